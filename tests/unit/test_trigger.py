"""VeoTaskTrigger: serialization and the polling loop, against the API on a loopback port."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_veo.triggers import veo as trigger_module
from airflow_provider_veo.triggers.veo import VeoTaskTrigger

from .conftest import API_KEY, JOB_URL, TRIGGER_KWARGS, VIDEO_ID, error_json, job_json
from .loopback_api import Answer, LoopbackApi, serving

JOB_PATH = JOB_URL.split("api.test", 1)[1]


def _trigger(**kwargs: Any) -> VeoTaskTrigger:
    kwargs.setdefault("poll_interval", 0.001)
    kwargs.setdefault("end_time", time.time() + 60)
    return VeoTaskTrigger(video_id=VIDEO_ID, **kwargs)


def _events(trigger: VeoTaskTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=120))


def _responses(*answers: Answer | str) -> LoopbackApi:
    """The API answering each GET with the next answer, then the last one again."""
    return LoopbackApi(*answers)


# --------------------------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------------------------


def test_serialize_round_trip() -> None:
    trigger = VeoTaskTrigger(
        video_id=VIDEO_ID, veo_conn_id="my_veo", poll_interval=12, end_time=1_900_000_000.5
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_veo.triggers.veo.VeoTaskTrigger"
    module_name, _, class_name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert type(rebuilt) is VeoTaskTrigger
    assert rebuilt.serialize() == (classpath, kwargs)
    assert (rebuilt.video_id, rebuilt.veo_conn_id, rebuilt.poll_interval, rebuilt.end_time) == (
        VIDEO_ID,
        "my_veo",
        12.0,
        1_900_000_000.5,
    )


def test_serialized_kwargs_are_primitives_without_the_key() -> None:
    _, kwargs = VeoTaskTrigger(video_id=VIDEO_ID, end_time=1_900_000_000.0).serialize()
    assert set(kwargs) == TRIGGER_KWARGS
    assert all(type(v) in (str, int, float, bool, type(None)) for v in kwargs.values()), kwargs
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert API_KEY not in json.dumps(kwargs)
    assert kwargs["veo_conn_id"] == "veo_default"


def test_default_end_time_is_a_fixed_deadline() -> None:
    before = time.time()
    trigger = VeoTaskTrigger(video_id=VIDEO_ID)
    assert before + 3000 < trigger.end_time < time.time() + 4000
    # A trigger rebuilt by another triggerer keeps the same deadline, not a fresh one.
    assert VeoTaskTrigger(**trigger.serialize()[1]).end_time == trigger.end_time


# --------------------------------------------------------------------------------------------
# run()
# --------------------------------------------------------------------------------------------


def test_completed_yields_one_success_event() -> None:
    completed = job_json(status="completed", progress=100, video_url="https://cdn.test/v.mp4")
    with serving(
        _responses(
            Answer(200, json=job_json(status="queued")),
            Answer(200, json=job_json(status="in_progress", progress=50)),
            Answer(200, json=completed),
        )
    ) as route:
        events = _events(_trigger())
    assert route.call_count == 3
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert event["video_id"] == VIDEO_ID
    assert event["job"]["status"] == "completed"
    assert event["job"]["video_url"] == "https://cdn.test/v.mp4"
    assert event["job"]["video_id"] == VIDEO_ID
    json.dumps(event)


@pytest.mark.parametrize("status", ["failed", "error", "FAILED", "cancelled", "canceled", "Canceled"])
def test_failed_or_error_yields_failed_event(status: str) -> None:
    failed = job_json(status=status, error={"code": "content_policy_violation", "message": "refused"})
    with serving(_responses(Answer(200, json=job_json(status="in_progress")), Answer(200, json=failed))):
        events = _events(_trigger())
    assert len(events) == 1
    [event] = events
    assert event["status"] == "failed"
    assert event["job"]["error_code"] == "content_policy_violation"
    assert "content_policy_violation" in event["message"]
    assert "refused" in event["message"]


def test_unknown_status_keeps_polling(logs: Any) -> None:
    with serving(
        _responses(
            Answer(200, json=job_json(status="RENDERING")),
            Answer(200, json=job_json(status="RENDERING")),
            Answer(200, json=job_json(status="SUCCESS", progress=100)),
        )
    ) as route:
        events = _events(_trigger())
    assert route.call_count == 3
    assert [e["status"] for e in events] == ["success"]
    unknown = [line for line in logs.lines("warning") if "RENDERING" in line]
    assert len(unknown) == 1


def test_transient_errors_keep_polling() -> None:
    with serving(
        _responses(
            *[Answer(503, json=error_json("no available channel", "model_not_found"))] * 7,
            "refused",
            Answer(502, text="<html>bad gateway</html>"),
            Answer(200, json=job_json(status="completed")),
        )
    ) as route:
        events = _events(_trigger())
    assert route.call_count == 10
    assert [e["status"] for e in events] == ["success"]


def test_401_yields_error_event() -> None:
    with serving(_responses(Answer(401, json=error_json("Invalid token (request id: q-1)")))) as route:
        events = _events(_trigger())
    assert route.call_count == 1
    assert len(events) == 1
    [event] = events
    assert event["status"] == "error"
    assert event["video_id"] == VIDEO_ID
    assert "Invalid token (request id: q-1)" in event["message"]
    assert event["job"] is None


def test_404_yields_error_event() -> None:
    with serving(_responses(Answer(404, json=error_json("task not found")))):
        events = _events(_trigger())
    assert [e["status"] for e in events] == ["error"]


def test_missing_connection_key_yields_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VEO_DEFAULT", json.dumps({"conn_type": "veo", "host": "http://api.test"})
    )
    with serving(_responses(Answer(200, json=job_json()))) as route:
        events = _events(_trigger())
        assert route.call_count == 0
    assert [e["status"] for e in events] == ["error"]
    assert "no API key" in events[0]["message"]


def test_end_time_in_the_past_yields_timeout() -> None:
    with serving(_responses(Answer(200, json=job_json(status="in_progress")))) as route:
        events = _events(_trigger(end_time=time.time() - 1))
    assert route.call_count == 1
    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert events[0]["video_id"] == VIDEO_ID


def test_deadline_reached_while_polling_yields_timeout() -> None:
    with serving(_responses(Answer(200, json=job_json(status="in_progress")))) as route:
        events = _events(_trigger(poll_interval=0.05, end_time=time.time() + 0.3))
    assert [e["status"] for e in events] == ["timeout"]
    assert 2 <= route.call_count <= 10


def test_completed_even_after_deadline_is_success() -> None:
    with serving(_responses(Answer(200, json=job_json(status="completed")))):
        events = _events(_trigger(end_time=time.time() - 1))
    assert [e["status"] for e in events] == ["success"]


def test_only_gets_and_one_client_per_run() -> None:
    with serving(
        _responses(
            *[Answer(200, json=job_json(status="in_progress", progress=p)) for p in range(0, 100, 10)],
            Answer(503, text=""),
            Answer(200, json=job_json(status="completed")),
        )
    ) as router:
        events = _events(_trigger())
        methods = {call.method for call in router.calls}
        paths = {call.path for call in router.calls}
        auth = {call.headers.get("Authorization") for call in router.calls}
        hosts = {call.host for call in router.calls}
        assert len(router.calls) == 12
    assert methods == {"GET"}
    assert paths == {"/v1/videos/veo3.1:1764905797-816jUFZAkM"}
    assert auth == {f"Bearer {API_KEY}"}
    assert hosts == {"api.test"}
    created = router.sessions
    assert len(created) == 1
    assert created[0].closed
    assert len(events) == 1


def _sleeps(monkeypatch: pytest.MonkeyPatch, trigger: VeoTaskTrigger, polls: int) -> tuple[list[float], int]:
    """The trigger's own sleeps (which do not move the clock) while its job ends on poll ``polls``, and
    the GETs it made."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, *args: Any) -> Any:
        slept.append(delay)
        return await real_sleep(0)

    with serving(
        _responses(
            *[Answer(200, json=job_json(status="in_progress"))] * (polls - 1),
            Answer(200, json=job_json(status="completed")),
        )
    ) as route:
        # The trigger's own sleeps: aiohttp and the loopback server sleep(0) in the same loop too.
        monkeypatch.setattr(
            trigger_module, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": fake_sleep})
        )
        events = _events(trigger)
    assert [e["status"] for e in events] == ["success"]
    return slept, route.call_count


def test_polls_at_the_interval_from_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    slept, gets = _sleeps(monkeypatch, _trigger(poll_interval=15), polls=4)
    assert gets == 4 and len(slept) == 3  # the first poll at once
    # The k-th wait lasts until the k-th poll is due: k intervals plus the trigger's phase (within
    # +-10% of one, the same for every poll) after the trigger started, whatever the polls took.
    assert all(15 * k - 1.5 - 5 <= s <= 15 * k + 1.5 for k, s in enumerate(slept, 1)), slept
    phases = [s - 15 * k for k, s in enumerate(slept, 1)]
    assert max(phases) - min(phases) < 5, slept


def test_a_job_just_read_is_polled_first_one_interval_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deferring task has just read the job: the trigger's first GET waits for the next slot."""
    slept, gets = _sleeps(monkeypatch, _trigger(poll_interval=15, status_read_at=time.time()), polls=2)
    assert gets == 2 and len(slept) == 2
    assert 15 * 0.9 - 5 <= slept[0] <= 15 * 1.1, slept
    assert abs(slept[1] - slept[0] - 15) < 5, slept


def test_a_restarted_trigger_polls_at_its_jobs_next_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer restart ten minutes after the task's read: no burst of GETs at once, but each job
    at its next slot, at most an interval and its phase away."""
    read_at = time.time() - 15 * 40 - 7
    slept, gets = _sleeps(monkeypatch, _trigger(poll_interval=15, status_read_at=read_at), polls=1)
    assert gets == 1 and len(slept) == 1
    assert 8 - 1.5 - 5 <= slept[0] <= 8 + 1.5, slept  # slot 41 is 8 s (and the phase) away


def test_progress_is_logged_only_when_debugging(logs: Any) -> None:
    """A change of status is logged; a change of progress alone, or the final status (the event says
    it, and the triggerer logs every event), costs a line only at DEBUG."""
    answers = [Answer(200, json=job_json(status="in_progress", progress=p)) for p in (10, 20, 30)] + [
        Answer(200, json=job_json(status="completed", progress=100))
    ]
    with serving(_responses(*answers)):
        _events(_trigger())
    lines = [line for line in logs.lines("info") if line.startswith(f"Video {VIDEO_ID}: status")]
    assert lines == [f"Video {VIDEO_ID}: status 'in_progress', progress 10%"]


def test_on_kill_logs_the_video_id(logs: Any) -> None:
    asyncio.run(_trigger().on_kill())
    warnings = logs.lines("warning")
    assert any(VIDEO_ID in line and "no cancel endpoint" in line for line in warnings), warnings


def test_when_debugging_every_change_is_logged(logs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = _trigger()
    monkeypatch.setattr(type(trigger.log), "isEnabledFor", lambda self, level: True, raising=False)
    answers = [Answer(200, json=job_json(status="in_progress", progress=p)) for p in (10, 20)]
    with serving(_responses(*answers, Answer(200, json=job_json(status="completed", progress=100)))):
        _events(trigger)
    lines = [line for line in logs.lines("info") if line.startswith(f"Video {VIDEO_ID}: status")]
    assert lines == [
        f"Video {VIDEO_ID}: status 'in_progress', progress 10%",
        f"Video {VIDEO_ID}: status 'in_progress', progress 20%",
        f"Video {VIDEO_ID}: status 'completed', progress 100%",
    ]
