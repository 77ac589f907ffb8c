"""The operators' execute paths, with a mocked hook (no HTTP here)."""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from airflow_provider_veo import api, polling
from airflow_provider_veo.api import (
    VeoSubmissionUncertainError,
    VeoTimeoutError,
    VeoTransientError,
    VideoJob,
)
from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.hooks.veo import VeoHook
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
#: Where the generate operator's videos go: a folder any user may create, as the pre-payment check asks.
VIDEOS = f"{tempfile.gettempdir()}/veo-unit-tests/videos/"
#: What the operators built from their default prompt, handed to the download to check the MP4 against.
REQUEST = api.build_request(prompt="a cat surfing a wave")
#: The fingerprint of that request (no reference images): what a retry's record must match.
FINGERPRINT = api.request_fingerprint(REQUEST, [])
DOWNLOADED = {
    "video_id": VIDEO_ID,
    "uri": "/data/videos/clip.mp4",
    "asset_uri": "file:///data/videos/clip.mp4",
    "bytes": 1234,
    "sha256": "ab" * 32,
    "content_type": "video/mp4",
    "model": "veo3.1-fast",
    "seconds": "4",
    "size": "1280x720",
    "duration_seconds": 4.0,
    "width": 1280,
    "height": 720,
    "prompt": "a cat surfing a wave",
    "prompt_sha256": "cd" * 32,
    "input_reference": [],
}


def _target(destination: str, video_id: str = VIDEO_ID) -> Any:
    """The file a video goes to, as the operators hand it to the hook."""
    from airflow_provider_veo.destinations import parse_destination

    return parse_destination(destination).file_for(video_id)


def _record(video_id: str, **fields: Any) -> dict[str, Any]:
    """What an earlier try of the default request left in the task_state_store."""
    return {
        "video_id": video_id,
        "submitted_at": time.time() - 5,
        "fingerprint": FINGERPRINT,
        "create_requests": 1,
        "submissions": 1,
        **fields,
    }


def _new_record(video_id: str, create_requests: int = 1, submissions: int = 1) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "submitted_at": mock.ANY,
        "fingerprint": FINGERPRINT,
        "create_requests": create_requests,
        "submissions": submissions,
    }


def _without_usage(result: Any) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "usage"}


def _pushed_ids(ti: FakeTI) -> list[Any]:
    return [value for key, value in ti.pushed if key == "video_id"]


def _job(status: str = "queued", video_id: str = VIDEO_ID, **fields: Any) -> VideoJob:
    return VideoJob.from_json(job_json(video_id, status, **fields))


def _hook(**returns: Any) -> Any:
    hook = mock.create_autospec(VeoHook, instance=True)
    hook.create_requests_sent = 0
    submitted = returns.get("submit", _job("queued"))

    def submit(request: Any, images: Any = None) -> Any:
        hook.create_requests_sent += 1
        if isinstance(submitted, BaseException):
            raise submitted
        return submitted

    hook.submit.side_effect = submit
    hook.load_references.return_value = returns.get("images", [])
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
    kwargs.setdefault("destination", VIDEOS)
    return _with_hook(VeoGenerateVideoOperator(task_id="generate", **kwargs), hook)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(polling, "time", SimpleNamespace(time=time.time, sleep=recorded.append))
    return recorded


# --------------------------------------------------------------------------------------------
# Template fields
# --------------------------------------------------------------------------------------------


def test_template_fields() -> None:
    from airflow_provider_veo.sensors.veo import VeoTaskSensor

    create = ("model", "prompt", "seconds", "size", "input_reference", "reuse_previous_job")
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


def kwargs_besides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What an operator takes besides the request's own arguments."""
    return {name: value for name, value in kwargs.items() if name not in api.VideoRequest.arguments()}


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
    with pytest.raises(api.VeoInputError, match=f"`{field}`"):  # when the task is defined
        operator_class(task_id="t", **kwargs)
    operator = _with_hook(operator_class(task_id="t", prompt="a cat", **kwargs_besides(kwargs)), hook)
    for name, value in kwargs.items():  # as if rendered from templates into the same values
        setattr(operator, name, value)
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
    request = api.build_request(prompt="a cat surfing a wave", model="veo3.1", seconds=8, size="1920x1080")
    usage = {
        "video_id": "task_new",
        "model": "veo3.1",
        "seconds": 8,
        "size": "1920x1080",
        "create_requests": 1,
        "try_number": ti.try_number,
    }
    assert ti.pushed == [("video_id", "task_new"), ("usage", usage)]
    [call] = hook.submit.call_args_list
    assert call.args == (request,) and call.kwargs == {"images": []}
    hook.get_video.assert_not_called()
    assert any("task_state_store" in line for line in logs.lines("warning"))


def test_create_with_store_remembers_the_id(ti: FakeTI) -> None:
    hook = _hook(submit=_job("queued", "task_new"))
    store = FakeStateStore()
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_new"
    assert store.sets == [(STATE_KEY, _new_record("task_new"))]
    hook.get_video.assert_not_called()
    assert _pushed_ids(ti) == ["task_new"]


@pytest.mark.parametrize("status", ["queued", "in_progress", "completed", "RENDERING"])
def test_create_retry_reuses_the_earlier_job(status: str, ti: FakeTI, logs: Any) -> None:
    hook = _hook(get_video=[_job(status, "task_old")])
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_old"
    hook.submit.assert_not_called()
    hook.create_video.assert_not_called()
    hook.get_video.assert_called_once_with("task_old")
    assert store.sets == []
    assert _pushed_ids(ti) == ["task_old"]
    assert dict(ti.pushed)["usage"]["create_requests"] == 1
    assert any("task_old" in line and "not submitting again" in line for line in logs.lines("info"))


def test_create_retry_resubmits_a_failed_job(ti: FakeTI) -> None:
    hook = _hook(get_video=[_job("failed", "task_old")], submit=_job("queued", "task_new"))
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_new"
    assert hook.submit.call_count == 1
    assert store.values[STATE_KEY] == _new_record("task_new", create_requests=2, submissions=2)
    assert _pushed_ids(ti) == ["task_new"]


def test_create_retry_fails_when_resubmit_failed_is_off(ti: FakeTI) -> None:
    failed = _job("error", "task_old", error={"code": "content_policy", "message": "prompt refused"})
    hook = _hook(get_video=[failed])
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    with pytest.raises(AirflowFailException) as info:
        _create(hook, resubmit_failed=False).execute({"ti": ti, "task_state_store": store})
    assert "content_policy" in str(info.value)
    assert "prompt refused" in str(info.value)
    hook.submit.assert_not_called()
    assert store.sets == []


def _not_found(video_id: str) -> api.VeoJobNotFoundError:
    return api.VeoJobNotFoundError(
        f"CometAPI answered HTTP 400: task_not_exist ({video_id})", status_code=400
    )


def test_resume_of_a_job_not_stored_yet_waits_for_it(ti: FakeTI, sleeps: list[float]) -> None:
    # The retry came seconds after the create: the gateway has not stored the task yet.
    stored = _record("task_old", submitted_at=time.time() - 5)
    hook = _hook(get_video=[_not_found("task_old"), _not_found("task_old"), _job("completed", "task_old")])
    store = FakeStateStore(**{STATE_KEY: stored})
    result = _generate(hook, poll_interval=0.01).execute({"ti": ti, "task_state_store": store})
    assert _without_usage(result) == DOWNLOADED
    assert "usage" in result
    hook.submit.assert_not_called()
    assert hook.get_video.call_count == 3
    assert store.sets == []


def test_resume_of_a_job_still_unknown_after_the_window_fails_naming_it(ti: FakeTI) -> None:
    stored = _record("task_old", submitted_at=time.time() - 3600)
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
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    with pytest.raises(VeoTransientError):
        _create(hook).execute({"ti": ti, "task_state_store": store})
    hook.submit.assert_not_called()


def test_create_uncertain_submission_fails_without_retry(ti: FakeTI, context: dict[str, Any]) -> None:
    hook = _hook(submit=VeoSubmissionUncertainError("may have created a job; check the dashboard"))
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
        "status_read_at": trigger.status_read_at,
    }
    assert before <= (trigger.status_read_at or 0) <= time.time()  # the create's answer
    assert deferred.timeout == timedelta(seconds=900) + DEFERRAL_GRACE
    assert deferred.timeout > timedelta(seconds=900)
    # Everything the resumed task needs travels in the event, not in defer kwargs.
    assert not deferred.kwargs
    assert store.sets == [(STATE_KEY, _new_record("task_new"))]
    assert _pushed_ids(ti) == ["task_new"]
    # What the "Stored video" link reads is pushed before deferring.
    assert dict(ti.pushed)["stored_video_uri"] == f"file://{VIDEOS}{api.video_filename('task_new')}"
    hook.download_video.assert_not_called()


def test_generate_deferrable_with_completed_resumed_job_downloads_at_once(ti: FakeTI) -> None:
    completed = _job("completed", "task_old", video_url="https://cdn.test/v.mp4")
    hook = _hook(get_video=[completed])
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    result = _generate(hook, deferrable=True).execute({"ti": ti, "task_state_store": store})
    assert _without_usage(result) == DOWNLOADED
    assert "usage" in result
    hook.submit.assert_not_called()
    hook.download_video.assert_called_once_with(
        "task_old", _target(VIDEOS, "task_old"), job=completed, request=REQUEST
    )


def test_generate_execute_complete_downloads() -> None:
    completed = _job("completed", video_url="https://cdn.test/v.mp4", model="veo3.1")
    hook = _hook()
    operator = _generate(hook, destination="s3://bucket/videos/")
    result = operator.execute_complete({"ti": FakeTI()}, api.job_event(completed))
    assert _without_usage(result) == DOWNLOADED
    assert "usage" in result
    hook.download_video.assert_called_once_with(
        VIDEO_ID, _target("s3://bucket/videos/"), job=completed, request=REQUEST
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
    assert _without_usage(result) == DOWNLOADED
    assert "usage" in result
    assert hook.get_video.call_count == 3
    assert len(sleeps) == 3
    # The recorded sleeps do not move the clock: the k-th lasts until the k-th poll is due, k intervals
    # plus the wait's phase (within +-10% of one, the same for every poll) after the wait started.
    assert all(30 * k - 3 - 1 <= s <= 30 * k + 3 for k, s in enumerate(sleeps, 1)), sleeps
    phases = [s - 30 * k for k, s in enumerate(sleeps, 1)]
    assert max(phases) - min(phases) < 1, sleeps
    hook.download_video.assert_called_once_with(VIDEO_ID, _target(VIDEOS), job=completed, request=REQUEST)
    assert _pushed_ids(ti) == [VIDEO_ID]


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
    completed = _job("completed", video_url="https://cdn.test/v.mp4")
    hook = _hook(get_video=[completed])
    operator = _with_hook(
        VeoDownloadVideoOperator(task_id="download", video_id=VIDEO_ID, destination="file:///videos/"), hook
    )
    assert operator.execute(context) == DOWNLOADED
    hook.download_video.assert_called_once_with(
        VIDEO_ID, _target("file:///videos/"), job=completed, request=None
    )


def test_download_errors(context: dict[str, Any]) -> None:
    hook = _hook(get_video=lambda video_id: _job("completed", video_url="https://cdn.test/v.mp4"))
    hook.download_video.side_effect = api.VeoDownloadError("truncated")
    operator = _with_hook(VeoDownloadVideoOperator(task_id="d", video_id=VIDEO_ID, destination="/v/"), hook)
    with pytest.raises(api.VeoDownloadError):  # retryable: left to Airflow's retries
        operator.execute(context)
    hook.download_video.side_effect = api.VeoBadRequestError("task not found")
    with pytest.raises(AirflowFailException, match="task not found"):
        operator.execute(context)


# --------------------------------------------------------------------------------------------
# Which earlier job a retry may reuse, and what a task may spend
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "earlier",
    [
        pytest.param(_record("task_old", fingerprint="0" * 64), id="another-request"),
        pytest.param("task_old", id="bare-id-of-an-earlier-release"),
    ],
)
def test_a_retry_never_reuses_a_job_made_for_another_request(earlier: Any, ti: FakeTI, logs: Any) -> None:
    hook = _hook(submit=_job("queued", "task_new"))
    store = FakeStateStore(**{STATE_KEY: earlier})
    assert _create(hook).execute({"ti": ti, "task_state_store": store}) == "task_new"
    hook.get_video.assert_not_called()
    assert store.values[STATE_KEY]["fingerprint"] == FINGERPRINT
    assert any("request changed" in line and "task_old" in line for line in logs.lines("warning"))


def test_reference_images_count_by_content(ti: FakeTI) -> None:
    images = [("first.png", b"\x89PNG new pixels", "image/png")]
    hook = _hook(submit=_job("queued", "task_new"), images=images)
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})  # made with no reference image
    _create(hook, input_reference="/frames/first.png").execute({"ti": ti, "task_state_store": store})
    hook.get_video.assert_not_called()
    assert hook.submit.call_args.kwargs == {"images": images}


@pytest.mark.parametrize("switch", [False, "False", "false", "0"])
def test_reuse_previous_job_off_renders_anew(switch: Any, ti: FakeTI, logs: Any) -> None:
    hook = _hook(submit=_job("queued", "task_new"))
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    operator = _create(hook, reuse_previous_job=switch)
    assert operator.execute({"ti": ti, "task_state_store": store}) == "task_new"
    hook.get_video.assert_not_called()
    assert store.values[STATE_KEY]["submissions"] == 2
    assert any("reuse_previous_job is off" in line for line in logs.lines("warning"))


def test_reuse_previous_job_refuses_what_is_not_a_switch(ti: FakeTI) -> None:
    with pytest.raises(api.VeoInputError, match="`reuse_previous_job`"):
        _create(_hook(), reuse_previous_job="maybe")
    operator = _create(_hook(), reuse_previous_job="{{ params.reuse }}")
    operator.reuse_previous_job = "maybe"  # as rendered
    with pytest.raises(AirflowFailException, match="`reuse_previous_job`"):
        operator.execute({"ti": ti})


def test_max_submissions_stops_a_second_paid_job(ti: FakeTI) -> None:
    hook = _hook(get_video=[_job("failed", "task_old")])
    store = FakeStateStore(**{STATE_KEY: _record("task_old")})
    with pytest.raises(AirflowFailException, match=r"already paid for 1 job.*max_submissions=1"):
        _create(hook, max_submissions=1).execute({"ti": ti, "task_state_store": store})
    hook.submit.assert_not_called()


def test_create_requests_of_a_failed_create_are_counted(ti: FakeTI) -> None:
    hook = _hook(submit=VeoSubmissionUncertainError("no answer"))
    store = FakeStateStore(**{STATE_KEY: _record("task_old", fingerprint="0" * 64, create_requests=3)})
    with pytest.raises(AirflowFailException):
        _create(hook).execute({"ti": ti, "task_state_store": store})
    assert store.values[STATE_KEY]["create_requests"] == 4
    assert store.values[STATE_KEY]["video_id"] == "task_old"  # nothing new is known to exist


def test_mapped_tasks_are_labelled_by_their_prompt_unless_told_otherwise() -> None:
    from airflow.sdk import DAG

    with DAG("labels", schedule=None):
        labelled = VeoGenerateVideoOperator.partial(task_id="a", destination="/x/").expand(prompt=["p"])
        own = VeoCreateVideoOperator.partial(task_id="b", map_index_template="{{ 1 }}").expand(prompt=["p"])
    assert labelled.map_index_template == "{{ task.prompt | truncate(48, True, '…', 0) }}"
    assert own.map_index_template == "{{ 1 }}"


def test_the_deferral_ends_with_the_execution_timeout(ti: FakeTI) -> None:
    ti.start_date = datetime.now(timezone.utc) - timedelta(seconds=100)
    hook = _hook(submit=_job("queued", "task_new"))
    operator = _generate(hook, deferrable=True, timeout=3600, execution_timeout=timedelta(seconds=400))
    with pytest.raises(TaskDeferred) as info:
        operator.execute({"ti": ti, "task_state_store": FakeStateStore()})
    left = info.value.trigger.end_time - time.time()
    assert 290 <= left <= 300
    assert info.value.timeout <= timedelta(seconds=300) + DEFERRAL_GRACE


# --------------------------------------------------------------------------------------------
# Downloads that cannot happen yet, or fail after the job was paid for
# --------------------------------------------------------------------------------------------


def test_downloading_an_unfinished_job_says_what_to_do(context: dict[str, Any]) -> None:
    hook = _hook(get_video=[_job("in_progress")])
    operator = _with_hook(VeoDownloadVideoOperator(task_id="d", video_id=VIDEO_ID, destination="/v/"), hook)
    with pytest.raises(api.VeoDownloadError, match=r"VeoTaskSensor.*wait_for_completion=True"):
        operator.execute(context)
    hook.download_video.assert_not_called()


def test_wait_for_completion_polls_before_downloading(context: dict[str, Any], sleeps: list[float]) -> None:
    completed = _job("completed", video_url="https://cdn.test/v.mp4")
    hook = _hook(get_video=[_job("queued"), _job("in_progress"), completed])
    operator = _with_hook(
        VeoDownloadVideoOperator(
            task_id="d", video_id=VIDEO_ID, destination="/v/", wait_for_completion=True, poll_interval=5
        ),
        hook,
    )
    assert operator.execute(context) == DOWNLOADED
    assert len(sleeps) == 2
    hook.download_video.assert_called_once_with(VIDEO_ID, _target("/v/"), job=completed, request=None)


@pytest.mark.parametrize("operator_kind", ["download", "generate"])
def test_a_download_failing_after_payment_says_how_to_fetch_the_video(
    operator_kind: str, ti: FakeTI, context: dict[str, Any]
) -> None:
    completed = _job("completed", video_url="https://cdn.test/v.mp4")
    hook = _hook(get_video=[completed], submit=completed)
    hook.download_video.side_effect = api.VeoInputError("destination", "cannot write the video: disk full")
    if operator_kind == "download":
        operator = _with_hook(
            VeoDownloadVideoOperator(task_id="d", video_id=VIDEO_ID, destination=VIDEOS), hook
        )
    else:
        operator = _generate(hook, deferrable=False)
    with pytest.raises(AirflowFailException) as info:
        operator.execute(context)
    message = str(info.value)
    assert "disk full" in message and "is paid for" in message
    assert f"python -m airflow_provider_veo download {VIDEO_ID} {VIDEOS}" in message
