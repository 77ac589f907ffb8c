"""The operators' execute paths, with a mocked hook (no HTTP here)."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    VeoSubmissionUncertainError,
    VeoTimeoutError,
    VeoTransientError,
    VideoJob,
)
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.operator_support import AirflowFailException
from airflow_provider_veo.operators import veo as operators_module
from airflow_provider_veo.operators.veo import (
    VeoCreateVideoOperator,
    VeoDownloadVideoOperator,
    VeoGenerateVideoOperator,
)
from airflow_provider_veo.triggers.veo import VeoTaskTrigger
from airflow_provider_veo.waiting import DEFERRAL_GRACE

from .conftest import VIDEO_ID, FakeStateStore, FakeTI, job_json

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

STATE_KEY = VeoCreateVideoOperator.STATE_KEY
#: What the operators built from their default prompt, handed to the download to check the MP4 against.
REQUEST = api.build_request(prompt="a cat surfing a wave")
DOWNLOADED = {
    "video_id": VIDEO_ID,
    "uri": "/data/videos/clip.mp4",
    "bytes": 1234,
    "sha256": "ab" * 32,
    "content_type": "video/mp4",
    "model": "veo3.1-fast",
    "seconds": "4",
    "size": "1280x720",
}


def _job(status: str = "queued", video_id: str = VIDEO_ID, **fields: Any) -> VideoJob:
    return VideoJob.from_json(job_json(video_id, status, **fields))


def _hook(**returns: Any) -> Any:
    hook = mock.create_autospec(VeoHook, instance=True)
    hook.submit.return_value = returns.get("submit", _job("queued"))
    hook.download_video.return_value = returns.get("download", dict(DOWNLOADED))
    if "get_video" in returns:
        hook.get_video.side_effect = returns["get_video"]
    return hook


def _with_hook(operator: Any, hook: Any) -> Any:
    operator.hook = hook  # replaces the cached_property for this instance
    return operator


def _create(hook: Any, **kwargs: Any) -> VeoCreateVideoOperator:
    kwargs.setdefault("prompt", "a cat surfing a wave")
    return _with_hook(VeoCreateVideoOperator(task_id="create", **kwargs), hook)


def _generate(hook: Any, **kwargs: Any) -> VeoGenerateVideoOperator:
    kwargs.setdefault("prompt", "a cat surfing a wave")
    kwargs.setdefault("destination", "/data/videos/")
    return _with_hook(VeoGenerateVideoOperator(task_id="generate", **kwargs), hook)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(operators_module, "time", SimpleNamespace(time=time.time, sleep=recorded.append))
    return recorded


# --------------------------------------------------------------------------------------------
# Template fields
# --------------------------------------------------------------------------------------------


def test_template_fields() -> None:
    from airflow_provider_veo.sensors.veo import VeoTaskSensor

    create = ("prompt", "model", "seconds", "size", "input_reference")
    assert tuple(VeoCreateVideoOperator.template_fields) == create
    assert tuple(VeoGenerateVideoOperator.template_fields) == (*create, "destination")
    assert tuple(VeoDownloadVideoOperator.template_fields) == ("video_id", "destination")
    assert tuple(VeoTaskSensor.template_fields) == ("video_id",)


def test_template_fields_render() -> None:
    operator = VeoGenerateVideoOperator(
        task_id="generate",
        prompt="a {{ params.animal }}",
        seconds="{{ params.seconds }}",
        input_reference=["/frames/{{ params.animal }}.png"],
        destination="/videos/{{ params.animal }}/",
    )
    operator.render_template_fields({"params": {"animal": "cat", "seconds": 8}})
    assert operator.prompt == "a cat"
    assert operator.seconds == "8"
    assert operator.input_reference == ["/frames/cat.png"]
    assert operator.destination == "/videos/cat/"


# --------------------------------------------------------------------------------------------
# VeoCreateVideoOperator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"seconds": 5}, "seconds"),
        ({"model": "veo3-pro", "seconds": 4}, "seconds"),
        ({"size": "1080x1920"}, "size"),
        ({"model": "veo3-pro", "size": "1x1"}, "size"),
        ({"input_reference": ["a.png", "b.png"]}, "input_reference"),
        ({"input_reference": {"first": "a.png"}}, "input_reference"),
    ],
)
@pytest.mark.parametrize("operator_class", [VeoCreateVideoOperator, VeoGenerateVideoOperator])
def test_invalid_input_fails_before_any_hook_call(
    operator_class: type, kwargs: dict[str, Any], field: str, ti: FakeTI
) -> None:
    hook = _hook()
    kwargs = {"prompt": "a cat", **kwargs}
    if operator_class is VeoGenerateVideoOperator:
        kwargs["destination"] = "/tmp/out/"
    operator = _with_hook(operator_class(task_id="t", **kwargs), hook)
    store = FakeStateStore()
    with pytest.raises(AirflowFailException, match=f"`{field}`"):
        operator.execute({"ti": ti, "task_state_store": store})
    assert hook.mock_calls == []
    assert ti.pushed == []
    assert store.sets == []


def test_create_submits_and_pushes_the_id(ti: FakeTI, context: dict[str, Any], logs: Any) -> None:
    hook = _hook(submit=_job("queued", "task_new"))
    operator = _create(hook, model="veo3.1", seconds=8, size="1920x1080")
    assert operator.execute(context) == "task_new"
    assert ti.pushed == [("video_id", "task_new")]
    [call] = hook.submit.call_args_list
    assert call.args == (
        api.build_request(prompt="a cat surfing a wave", model="veo3.1", seconds=8, size="1920x1080"),
    )
    hook.get_video.assert_not_called()
    assert any("task_state_store" in line for line in logs.lines("warning"))


def test_create_with_store_remembers_the_id(ti: FakeTI) -> None:
    hook = _hook(submit=_job("queued", "task_new"))
    store = FakeStateStore()
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_new"
    assert store.sets == [(STATE_KEY, {"video_id": "task_new", "submitted_at": mock.ANY})]
    hook.get_video.assert_not_called()
    assert ti.pushed == [("video_id", "task_new")]


@pytest.mark.parametrize("status", ["queued", "in_progress", "completed", "RENDERING"])
def test_create_retry_reuses_the_earlier_job(status: str, ti: FakeTI, logs: Any) -> None:
    hook = _hook(get_video=[_job(status, "task_old")])
    store = FakeStateStore(**{STATE_KEY: "task_old"})
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_old"
    hook.submit.assert_not_called()
    hook.create_video.assert_not_called()
    hook.get_video.assert_called_once_with("task_old")
    assert store.sets == []
    assert ti.pushed == [("video_id", "task_old")]
    assert any("task_old" in line and "not submitting again" in line for line in logs.lines("info"))


def test_create_retry_resubmits_a_failed_job(ti: FakeTI) -> None:
    hook = _hook(get_video=[_job("failed", "task_old")], submit=_job("queued", "task_new"))
    store = FakeStateStore(**{STATE_KEY: "task_old"})
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_new"
    assert hook.submit.call_count == 1
    assert store.values[STATE_KEY]["video_id"] == "task_new"
    assert ti.pushed == [("video_id", "task_new")]


def test_create_retry_fails_when_resubmit_failed_is_off(ti: FakeTI) -> None:
    failed = _job("error", "task_old", error={"code": "content_policy", "message": "prompt refused"})
    hook = _hook(get_video=[failed])
    store = FakeStateStore(**{STATE_KEY: "task_old"})
    with pytest.raises(AirflowFailException) as info:
        _create(hook, resubmit_failed=False).execute({"ti": ti, "task_state_store": store})
    assert "content_policy" in str(info.value)
    assert "prompt refused" in str(info.value)
    hook.submit.assert_not_called()
    assert store.values == {STATE_KEY: "task_old"}


def _not_found(video_id: str) -> api.VeoJobNotFoundError:
    return api.VeoJobNotFoundError(
        f"CometAPI answered HTTP 400: task_not_exist ({video_id})", status_code=400
    )


def test_resume_of_a_job_not_stored_yet_waits_for_it(ti: FakeTI, sleeps: list[float]) -> None:
    # The retry came seconds after the create: the gateway has not stored the task yet.
    stored = {"video_id": "task_old", "submitted_at": time.time() - 5}
    hook = _hook(get_video=[_not_found("task_old"), _not_found("task_old"), _job("completed", "task_old")])
    store = FakeStateStore(**{STATE_KEY: stored})
    result = _generate(hook, poll_interval=0.01).execute({"ti": ti, "task_state_store": store})
    assert result == DOWNLOADED
    hook.submit.assert_not_called()
    assert hook.get_video.call_count == 3
    assert store.sets == []


def test_resume_of_a_job_still_unknown_after_the_window_fails_naming_it(ti: FakeTI) -> None:
    stored = {"video_id": "task_old", "submitted_at": time.time() - 3600}
    hook = _hook(get_video=[_not_found("task_old")])
    store = FakeStateStore(**{STATE_KEY: stored})
    with pytest.raises(AirflowFailException, match="task_old"):
        _generate(hook).execute({"ti": ti, "task_state_store": store})
    hook.submit.assert_not_called()


def test_a_job_invisible_past_the_window_fails_the_worker_wait(ti: FakeTI, sleeps: list[float]) -> None:
    hook = _hook(submit=_job("unknown", "task_new"), get_video=_not_found("task_new"))
    with pytest.raises(AirflowFailException, match=r"task_new.*grace window"):
        _generate(hook, visibility_grace=0).execute({"ti": ti, "task_state_store": FakeStateStore()})
    hook.download_video.assert_not_called()


def test_create_transient_error_on_resume_is_retryable(ti: FakeTI) -> None:
    hook = _hook(get_video=VeoTransientError("HTTP 503"))
    store = FakeStateStore(**{STATE_KEY: "task_old"})
    with pytest.raises(VeoTransientError):
        _create(hook).execute({"ti": ti, "task_state_store": store})
    hook.submit.assert_not_called()


def test_create_uncertain_submission_fails_without_retry(ti: FakeTI, context: dict[str, Any]) -> None:
    hook = _hook()
    hook.submit.side_effect = VeoSubmissionUncertainError("may have created a job; check the dashboard")
    with pytest.raises(AirflowFailException, match="check the dashboard"):
        _create(hook).execute(context)
    assert ti.pushed == []


def test_create_builds_a_real_hook() -> None:
    operator = VeoCreateVideoOperator(task_id="t", prompt="p", veo_conn_id="my_veo")
    assert isinstance(operator.hook, VeoHook)
    assert operator.hook.veo_conn_id == "my_veo"


# --------------------------------------------------------------------------------------------
# VeoGenerateVideoOperator
# --------------------------------------------------------------------------------------------


def test_generate_defers_to_the_trigger(ti: FakeTI) -> None:
    hook = _hook(submit=_job("queued", "task_new"))
    store = FakeStateStore()
    operator = _generate(hook, deferrable=True, poll_interval=20, timeout=900, veo_conn_id="my_veo")
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        operator.execute({"ti": ti, "task_state_store": store})
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, VeoTaskTrigger)
    assert (trigger.video_id, trigger.veo_conn_id, trigger.poll_interval) == ("task_new", "my_veo", 20.0)
    assert before + 900 <= trigger.end_time <= time.time() + 900
    classpath, trigger_kwargs = trigger.serialize()
    assert classpath == "airflow_provider_veo.triggers.veo.VeoTaskTrigger"
    assert trigger_kwargs == {
        "video_id": "task_new",
        "veo_conn_id": "my_veo",
        "poll_interval": 20.0,
        "end_time": trigger.end_time,
        "visible_by": trigger.visible_by,
    }
    assert deferred.timeout == timedelta(seconds=900) + DEFERRAL_GRACE
    assert deferred.timeout > timedelta(seconds=900)
    # Everything the resumed task needs travels in the event, not in defer kwargs.
    assert not deferred.kwargs
    assert store.sets == [(STATE_KEY, {"video_id": "task_new", "submitted_at": mock.ANY})]
    assert ti.pushed == [("video_id", "task_new")]
    hook.download_video.assert_not_called()


def test_generate_deferrable_with_completed_resumed_job_downloads_at_once(ti: FakeTI) -> None:
    completed = _job("completed", "task_old", video_url="https://cdn.test/v.mp4")
    hook = _hook(get_video=[completed])
    store = FakeStateStore(**{STATE_KEY: "task_old"})
    result = _generate(hook, deferrable=True).execute({"ti": ti, "task_state_store": store})
    assert result == DOWNLOADED
    hook.submit.assert_not_called()
    hook.download_video.assert_called_once_with("task_old", "/data/videos/", job=completed, request=REQUEST)


def test_generate_execute_complete_downloads() -> None:
    completed = _job("completed", video_url="https://cdn.test/v.mp4", model="veo3.1")
    hook = _hook()
    operator = _generate(hook, destination="s3://bucket/videos/")
    result = operator.execute_complete({}, api.job_event(completed))
    assert result == DOWNLOADED
    hook.download_video.assert_called_once_with(
        VIDEO_ID, "s3://bucket/videos/", job=completed, request=REQUEST
    )
    hook.submit.assert_not_called()


def test_generate_execute_complete_failed_event() -> None:
    failed = _job("failed", error={"code": "content_policy_violation", "message": "unsafe prompt"})
    hook = _hook()
    with pytest.raises(AirflowFailException) as info:
        _generate(hook).execute_complete({}, api.job_event(failed))
    assert "content_policy_violation" in str(info.value)
    assert "unsafe prompt" in str(info.value)
    assert VIDEO_ID in str(info.value)
    hook.download_video.assert_not_called()


def test_generate_execute_complete_timeout_is_retryable() -> None:
    hook = _hook()
    with pytest.raises(VeoTimeoutError) as info:
        _generate(hook).execute_complete({}, api.timeout_event(VIDEO_ID))
    assert not isinstance(info.value, AirflowFailException)
    assert info.value.retryable
    assert VIDEO_ID in str(info.value)
    hook.download_video.assert_not_called()


def test_generate_execute_complete_error_event() -> None:
    event = api.error_event(VIDEO_ID, api.VeoAuthenticationError("Invalid token"))
    with pytest.raises(AirflowFailException, match="Invalid token"):
        _generate(_hook()).execute_complete({}, event)


def test_generate_polls_in_the_worker(ti: FakeTI, context: dict[str, Any], sleeps: list[float]) -> None:
    completed = _job("completed", progress=100, video_url="https://cdn.test/v.mp4")
    hook = _hook(
        submit=_job("queued"),
        get_video=[_job("in_progress", progress=20), VeoTransientError("HTTP 503"), completed],
    )
    result = _generate(hook, deferrable=False, poll_interval=30, timeout=3600).execute(context)
    assert result == DOWNLOADED
    assert hook.get_video.call_count == 3
    assert len(sleeps) == 3
    assert all(30 <= s <= 33 for s in sleeps), sleeps
    hook.download_video.assert_called_once_with(VIDEO_ID, "/data/videos/", job=completed, request=REQUEST)
    assert ti.pushed == [("video_id", VIDEO_ID)]


def test_generate_in_worker_failed_job(context: dict[str, Any], sleeps: list[float]) -> None:
    failed = _job("error", error={"code": "upstream_error", "message": "render crashed"})
    hook = _hook(get_video=[failed])
    with pytest.raises(AirflowFailException, match="render crashed"):
        _generate(hook, deferrable=False, poll_interval=1).execute(context)
    hook.download_video.assert_not_called()


def test_generate_in_worker_times_out(context: dict[str, Any]) -> None:
    hook = _hook(get_video=lambda video_id: _job("in_progress"))
    started = time.monotonic()
    with pytest.raises(VeoTimeoutError, match="did not finish"):
        _generate(hook, deferrable=False, poll_interval=0.02, timeout=0.15).execute(context)
    assert 0.15 <= time.monotonic() - started < 5
    assert 2 <= hook.get_video.call_count <= 9
    hook.download_video.assert_not_called()


def test_default_deferrable_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert VeoGenerateVideoOperator(task_id="a", prompt="p", destination="/x/").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert VeoGenerateVideoOperator(task_id="b", prompt="p", destination="/x/").deferrable is False


# --------------------------------------------------------------------------------------------
# VeoDownloadVideoOperator
# --------------------------------------------------------------------------------------------


def test_download_returns_the_hooks_dict(context: dict[str, Any]) -> None:
    hook = _hook()
    operator = _with_hook(
        VeoDownloadVideoOperator(task_id="download", video_id=VIDEO_ID, destination="file:///videos/"), hook
    )
    assert operator.execute(context) == DOWNLOADED
    hook.download_video.assert_called_once_with(VIDEO_ID, "file:///videos/")


def test_download_errors(context: dict[str, Any]) -> None:
    hook = _hook()
    hook.download_video.side_effect = api.VeoDownloadError("truncated")
    operator = _with_hook(VeoDownloadVideoOperator(task_id="d", video_id=VIDEO_ID, destination="/v/"), hook)
    with pytest.raises(api.VeoDownloadError):  # retryable: left to Airflow's retries
        operator.execute(context)
    hook.download_video.side_effect = api.VeoBadRequestError("task not found")
    with pytest.raises(AirflowFailException, match="task not found"):
        operator.execute(context)
