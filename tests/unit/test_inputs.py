"""Every argument checked where it enters: when the task is defined, and again once rendered, before
anything is read or sent; and the one declaration of a request (:class:`VideoRequest`)."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.api import VeoInputError, VideoRequest, arguments
from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.operators import durable
from airflow_provider_veo.operators.veo import (
    VeoCreateVideoOperator,
    VeoDownloadVideoOperator,
    VeoGenerateVideoOperator,
    _SubmittingOperator,
)
from airflow_provider_veo.outcomes import task_outcomes
from airflow_provider_veo.sensors.veo import VeoTaskSensor
from airflow_provider_veo.testing.emulator import models as emulated

from .conftest import PNG, VIDEO_ID, FakeStateStore, FakeTI, job_json

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

STATE_KEY = durable.STATE_KEY
HUGE = 10**400
LONE_SURROGATE = "a fox \udc80 in the snow"


def _refused(field: str, call: Any, *args: Any, **kwargs: Any) -> VeoInputError:
    with pytest.raises(VeoInputError) as info:
        call(*args, **kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"Invalid `{field}`: ")
    return info.value


# --------------------------------------------------------------------------------------------
# The request's fields
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments_", "field", "says"),
    [
        ({"seconds": HUGE}, "seconds", "an integer of about 401 digits"),
        ({"seconds": -HUGE}, "seconds", "an integer of about 401 digits"),
        ({"seconds": 1e308}, "seconds", "4, 6, 8"),
        ({"seconds": math.nan}, "seconds", "4, 6, 8"),
        ({"seconds": math.inf}, "seconds", "4, 6, 8"),
        ({"seconds": "1e400"}, "seconds", "4, 6, 8"),
        ({"seconds": "9" * 5000}, "seconds", "5002 characters"),
        ({"seconds": 0}, "seconds", "4, 6, 8"),
        ({"model": "veo9", "seconds": HUGE}, "seconds", "from 1 to 60"),
        ({"model": "veo9", "seconds": 61}, "seconds", "from 1 to 60"),
        ({"model": "veo9", "seconds": 1e308}, "seconds", "from 1 to 60"),
        ({"prompt": LONE_SURROGATE}, "prompt", "lone surrogate"),
        ({"model": "veo3.1\ud800"}, "model", "lone surrogate"),
        ({"input_reference": "https://cdn.example/\udc80.png"}, "input_reference", "lone surrogate"),
        ({"size": "9" * 5000}, "size", "5002 characters"),
    ],
)
def test_request_fields_that_cannot_be_sent_are_refused_by_name(
    arguments_: dict[str, Any], field: str, says: str
) -> None:
    error = _refused(field, VideoRequest.build, **{"prompt": "a fox", **arguments_})
    assert says in str(error)
    str(error).encode("utf-8")  # the message itself can be logged


def test_a_local_reference_name_may_hold_any_bytes() -> None:
    # A file name that is not UTF-8 reaches Python as surrogates, and opens as such.
    request = VideoRequest.build(prompt="p", input_reference="/frames/\udcff.png")
    assert request.references == ("/frames/\udcff.png",)


def test_request_names_every_argument_and_refuses_others() -> None:
    assert VideoRequest.arguments() == {
        "model": "model",
        "prompt": "prompt",
        "seconds": "seconds",
        "size": "size",
        "input_reference": "references",
    }
    assert VideoRequest.form_names() == ("model", "prompt", "seconds", "size")
    with pytest.raises(TypeError, match="resolution"):
        VideoRequest.build(prompt="p", resolution="720p")


def test_the_fingerprint_is_the_one_earlier_releases_wrote() -> None:
    # Records of in-flight retries must still match after an upgrade: the same canonical text.
    request = VideoRequest.build(prompt="a fox", model="veo3.1", seconds="8", size="1280x720")
    digests = [hashlib.sha256(PNG).hexdigest()]
    earlier = json.dumps(["veo3.1", "a fox", 8, "1280x720", digests], ensure_ascii=False)
    assert request.fingerprint(digests) == hashlib.sha256(earlier.encode()).hexdigest()
    assert api.request_fingerprint(request, digests) == request.fingerprint(digests)


@pytest.mark.parametrize(
    "change",
    [{"prompt": "a cat"}, {"model": "veo3.1-fast"}, {"seconds": 4}, {"size": "720x1280"}],
)
def test_every_form_field_counts_in_the_fingerprint(change: dict[str, Any]) -> None:
    base = {"prompt": "a fox", "model": "veo3.1", "seconds": 8, "size": "1280x720"}
    before = VideoRequest.build(**base).fingerprint([])
    assert VideoRequest.build(**{**base, **change}).fingerprint([]) != before
    assert VideoRequest.build(**base).fingerprint(["0" * 64]) != before


def test_the_operators_and_the_hook_take_the_requests_arguments() -> None:
    operator = inspect.signature(_SubmittingOperator.__init__).parameters
    for name in VideoRequest.arguments():
        assert name in operator, name
        assert operator[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert set(_SubmittingOperator.template_fields) >= set(VideoRequest.arguments())
    # The hook takes the same names, through VideoRequest.build.
    hook = VeoHook()
    with mock.patch.object(VeoHook, "submit") as submit:
        hook.create_video("p", model="veo3.1", seconds=8, size="16x9", input_reference=[Path("/a.png")])
    assert submit.call_args.args[0] == VideoRequest.build(
        prompt="p", model="veo3.1", seconds=8, size="16x9", input_reference=["/a.png"]
    )


def test_operator_takes_pathlike_references_as_the_hook_does(tmp_path: Path) -> None:
    first = tmp_path / "first.png"
    operator = VeoCreateVideoOperator(task_id="c", prompt="p", model="veo3.1", input_reference=[first])
    assert operator.build_request().references == (str(first),)
    operator = VeoCreateVideoOperator(task_id="c", prompt="p", input_reference=first)
    assert operator.build_request().references == (str(first),)


def test_the_emulator_checks_every_form_field_the_client_sends() -> None:
    assert {"model", *emulated.FIELD_CHECKS} == set(VideoRequest.form_names())


# --------------------------------------------------------------------------------------------
# The operators' other arguments
# --------------------------------------------------------------------------------------------

BAD_NUMBERS = [0, -1, "5", "", None, True, math.nan, math.inf, -math.inf, HUGE, 1e308, [5], b"5"]


@pytest.mark.parametrize("value", [*BAD_NUMBERS, 0.5, 3601])
def test_poll_interval_is_a_number_of_seconds_from_the_floor(value: object) -> None:
    error = _refused("poll_interval", arguments.poll_interval, "poll_interval", value)
    assert "at least 1 and at most 3600 seconds" in str(error)


@pytest.mark.parametrize("value", [1, 2.5, 3600, timedelta(seconds=30)])
def test_poll_interval_accepted(value: object) -> None:
    assert arguments.poll_interval("poll_interval", value) == (
        value.total_seconds() if isinstance(value, timedelta) else value
    )


def test_the_deployment_may_lower_the_floor_for_an_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_veo.config import min_poll_interval

    monkeypatch.setenv("AIRFLOW__VEO__MIN_POLL_INTERVAL", "0.2")
    assert min_poll_interval() == 0.2
    monkeypatch.setenv("AIRFLOW__VEO__MIN_POLL_INTERVAL", "0")
    assert min_poll_interval() == 0.01  # never a busy loop
    monkeypatch.delenv("AIRFLOW__VEO__MIN_POLL_INTERVAL")
    assert min_poll_interval() == arguments.MIN_POLL_INTERVAL == 1.0
    with pytest.raises(VeoInputError, match="at least 1 and"):
        VeoGenerateVideoOperator(task_id="g", prompt="p", destination="/v/", poll_interval=0.5)


@pytest.mark.parametrize("value", [v for v in BAD_NUMBERS if v is not None] + [7 * 24 * 3600 + 1])
def test_timeout_is_a_positive_number_of_seconds_up_to_a_week(value: object) -> None:
    error = _refused("timeout", arguments.timeout, "timeout", value)
    assert "more than 0 and at most 604800 seconds" in str(error)


def test_timeout_none_is_the_default() -> None:
    assert arguments.timeout("timeout", None) == api.DEFAULT_TIMEOUT
    assert arguments.timeout("timeout", timedelta(minutes=5)) == 300


@pytest.mark.parametrize("value", [-1, "60", None, True, math.nan, math.inf, HUGE, 1e308, 3601])
def test_visibility_grace_is_0_to_an_hour(value: object) -> None:
    _refused("visibility_grace", arguments.visibility_grace, value)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", 101, HUGE, math.nan])
def test_max_submissions_is_none_or_1_to_100(value: object) -> None:
    error = _refused("max_submissions", arguments.max_submissions, value)
    assert "None (no cap) or a whole number from 1 to 100" in str(error)


@pytest.mark.parametrize("value", [None, "maybe", 2, 1.0, [True]])
def test_switches_are_true_or_false(value: object) -> None:
    _refused("resubmit_failed", arguments.switch, "resubmit_failed", value)


@pytest.mark.parametrize("value", [None, 42, b"/videos/", [], "", "  ", "/videos/\x00x.mp4", HUGE])
def test_destination_is_text_or_pathlike(value: object) -> None:
    _refused("destination", arguments.destination, value)


# --------------------------------------------------------------------------------------------
# Where the checks run: when the task is defined, and once rendered
# --------------------------------------------------------------------------------------------

GENERATE = {"prompt": "a fox", "destination": "/videos/"}
BAD_ARGUMENTS = [
    ("seconds", HUGE),
    ("seconds", 1e308),
    ("prompt", LONE_SURROGATE),
    ("poll_interval", 0),
    ("poll_interval", -5),
    ("poll_interval", "15"),
    ("poll_interval", math.nan),
    ("timeout", 0),
    ("timeout", "1h"),
    ("timeout", 1e308),
    ("timeout", HUGE),
    ("max_submissions", 0),
    ("visibility_grace", math.inf),
    ("resubmit_failed", "perhaps"),
    ("destination", 42),
    ("destination", None),
    ("write_manifest", "yes please"),
]


@pytest.mark.parametrize(("name", "value"), BAD_ARGUMENTS)
def test_generate_refuses_a_bad_argument_when_defined(name: str, value: object) -> None:
    _refused(name, VeoGenerateVideoOperator, task_id="g", **{**GENERATE, name: value})


@pytest.mark.parametrize(
    ("operator", "kwargs", "name", "value"),
    [
        (VeoCreateVideoOperator, {"prompt": "p"}, "max_submissions", -1),
        (VeoCreateVideoOperator, {"prompt": "p"}, "visibility_grace", "60"),
        (VeoCreateVideoOperator, {"prompt": "p"}, "seconds", HUGE),
        (VeoDownloadVideoOperator, {"video_id": "v", "destination": "/v/"}, "timeout", math.inf),
        (VeoDownloadVideoOperator, {"video_id": "v", "destination": "/v/"}, "poll_interval", "1"),
        (VeoDownloadVideoOperator, {"video_id": "v", "destination": "/v/"}, "destination", 3),
        (VeoDownloadVideoOperator, {"video_id": "v", "destination": "/v/"}, "video_id", 42),
        (VeoDownloadVideoOperator, {"video_id": "v", "destination": "/v/"}, "wait_for_completion", "x"),
        (VeoTaskSensor, {"video_id": "v"}, "poke_interval", 0),
        (VeoTaskSensor, {"video_id": "v"}, "timeout", HUGE),
        (VeoTaskSensor, {"video_id": "v"}, "visibility_grace", -1),
        (VeoTaskSensor, {"video_id": "v"}, "video_id", ""),
    ],
)
def test_every_operator_refuses_a_bad_argument_when_defined(
    operator: type, kwargs: dict[str, Any], name: str, value: object
) -> None:
    _refused(name, operator, task_id="t", **{**kwargs, name: value})


def test_templates_and_xcoms_are_checked_once_rendered() -> None:
    from airflow.sdk import DAG

    with DAG("inputs", schedule=None):
        create = VeoCreateVideoOperator(task_id="c", prompt="{{ params.p }}", seconds="{{ params.s }}")
        VeoGenerateVideoOperator(
            task_id="g",
            prompt="p",
            input_reference=["{{ params.frame }}"],
            destination="{{ params.d }}",
            reuse_previous_job="{{ params.reuse }}",
        )
        VeoTaskSensor(task_id="s", video_id=create.output)
        VeoDownloadVideoOperator(task_id="d", video_id=create.output, destination="/v/")


def test_timeout_none_means_the_default_everywhere() -> None:
    assert VeoGenerateVideoOperator(task_id="g", timeout=None, **GENERATE).timeout == api.DEFAULT_TIMEOUT
    sensor = VeoTaskSensor(task_id="s", video_id="v", timeout=None)
    assert sensor.timeout == api.DEFAULT_TIMEOUT


def _hook() -> Any:
    hook = mock.create_autospec(VeoHook, instance=True)
    hook.create_requests_sent = 0
    hook.load_references.return_value = []
    return hook


@pytest.mark.parametrize(
    ("name", "rendered"),
    [
        ("seconds", "1" + "0" * 400),
        ("prompt", LONE_SURROGATE),
        ("destination", 42),
        ("destination", "/videos/\x00/"),
        ("input_reference", ["{{ never rendered }}", 5]),
        ("reuse_previous_job", "perhaps"),
        ("timeout", "60"),
        ("poll_interval", math.nan),
    ],
)
def test_generate_refuses_a_bad_rendered_argument_before_anything_is_read_or_sent(
    name: str, rendered: object
) -> None:
    hook = _hook()
    operator = VeoGenerateVideoOperator(task_id="g", **GENERATE)
    operator.hook = hook  # type: ignore[misc]
    setattr(operator, name, rendered)
    store = FakeStateStore()
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match=f"Invalid `{name}`"):
        operator.execute({"ti": ti, "task_state_store": store})  # type: ignore[arg-type]
    assert hook.mock_calls == []
    assert store.sets == [] and ti.pushed == []


@pytest.mark.parametrize("video_id", ["", None, 42, {"video_id": VIDEO_ID}])
def test_sensor_refuses_a_bad_rendered_video_id_before_polling(video_id: object) -> None:
    hook = _hook()
    sensor = VeoTaskSensor(task_id="s", video_id="{{ ti.xcom_pull('create') }}")
    sensor.hook = hook  # type: ignore[misc]
    sensor.video_id = video_id  # type: ignore[assignment]
    with pytest.raises(AirflowFailException, match="Invalid `video_id`"):
        sensor.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert hook.mock_calls == []


# --------------------------------------------------------------------------------------------
# Errors that retrying cannot mend are logged once
# --------------------------------------------------------------------------------------------


def test_a_final_error_is_one_exception_with_the_providers_traceback() -> None:
    with pytest.raises(AirflowFailException) as info, task_outcomes():
        VideoRequest.build(prompt="p", seconds=5)
    error = info.value
    assert error.__cause__ is None and error.__suppress_context__
    printed = "".join(traceback.format_exception(error))
    assert printed.count("Invalid `seconds`") == 1, printed
    assert "_check_seconds" in printed  # where it was raised is still shown


# --------------------------------------------------------------------------------------------
# The durable record: read once, trusted only when it reads right
# --------------------------------------------------------------------------------------------

REQUEST = VideoRequest.build(prompt="a fox")
GOOD = {
    "video_id": "task_old",
    "submitted_at": time.time() - 5,
    "fingerprint": REQUEST.fingerprint([]),
    "create_requests": 1,
    "submissions": 1,
}
UNREADABLE = [
    pytest.param([GOOD], id="a-list"),
    pytest.param(42, id="a-number"),
    pytest.param(True, id="a-bool"),
    pytest.param('{"video_id": "task_o', id="truncated-json-text"),
    pytest.param("task old", id="text-with-a-space"),
    pytest.param({**GOOD, "video_id": 42}, id="video_id-a-number"),
    pytest.param({**GOOD, "video_id": ""}, id="video_id-empty"),
    pytest.param({**GOOD, "submitted_at": "yesterday"}, id="submitted_at-text"),
    pytest.param({**GOOD, "submitted_at": math.nan}, id="submitted_at-nan"),
    pytest.param({**GOOD, "fingerprint": "abc"}, id="fingerprint-truncated"),
    pytest.param({**GOOD, "create_requests": -1}, id="create_requests-negative"),
    pytest.param({**GOOD, "submissions": "1"}, id="submissions-text"),
    pytest.param({**GOOD, "submissions": True}, id="submissions-a-bool"),
]


def _create(hook: Any, **kwargs: Any) -> VeoCreateVideoOperator:
    operator = VeoCreateVideoOperator(task_id="create", prompt="a fox", **kwargs)
    operator.hook = hook  # type: ignore[misc]
    return operator


@pytest.mark.parametrize("stored", UNREADABLE)
def test_an_unreadable_record_stops_the_task_before_paying(stored: object) -> None:
    hook = _hook()
    store = FakeStateStore(**{STATE_KEY: stored})
    with pytest.raises(AirflowFailException) as info:
        _create(hook).execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]
    message = str(info.value)
    assert "cannot be read" in message and repr(STATE_KEY) in message
    assert "reuse_previous_job=False" in message and "VeoDownloadVideoOperator" in message
    hook.submit.assert_not_called()
    hook.get_video.assert_not_called()
    assert store.sets == []


def test_an_unreadable_record_is_replaced_when_the_user_asks_for_a_new_render(logs: Any) -> None:
    hook = _hook()
    hook.submit.return_value = api.VideoJob.from_json(job_json("task_new"))
    store = FakeStateStore(**{STATE_KEY: '{"video_id": "task_o'})
    operator = _create(hook, reuse_previous_job=False)
    assert operator.execute({"ti": FakeTI(), "task_state_store": store}) == "task_new"  # type: ignore[arg-type]
    assert store.values[STATE_KEY]["video_id"] == "task_new"
    assert any("unreadable record" in line for line in logs.lines("warning"))


@pytest.mark.parametrize("stored", [None, "task_old", GOOD, {**GOOD, "later_field": [1]}])
def test_readable_records(stored: object) -> None:
    record = durable.SubmissionRecord.read(stored)
    assert record.video_id == (None if stored is None else "task_old")


def test_a_store_that_cannot_be_read_is_retried_without_paying() -> None:
    hook = _hook()
    store = mock.Mock()
    store.get.side_effect = RuntimeError("the API server is restarting")
    with pytest.raises(durable.VeoStateRecordError, match="not submitting") as info:
        _create(hook).execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]
    assert info.value.retryable  # a later try may read it
    hook.submit.assert_not_called()


def test_a_job_that_cannot_be_recorded_fails_the_task_naming_it() -> None:
    hook = _hook()
    hook.submit.return_value = api.VideoJob.from_json(job_json("task_new"))
    store = mock.Mock()
    store.get.return_value = None
    store.set.side_effect = RuntimeError("database is locked")
    with pytest.raises(AirflowFailException) as info:
        _create(hook).execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]
    message = str(info.value)
    assert "task_new" in message and "paid for" in message and "database is locked" in message
    assert hook.submit.call_count == 1


def test_a_failed_count_never_hides_the_creates_own_error() -> None:
    hook = _hook()
    hook.submit.side_effect = api.VeoSubmissionUncertainError("no answer")
    store = mock.Mock()
    store.get.return_value = None
    store.set.side_effect = RuntimeError("database is locked")
    with pytest.raises(AirflowFailException, match="no answer"):
        _create(hook).execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Pins: a reused job's visibility grace runs from its own submission
# --------------------------------------------------------------------------------------------


def test_a_reused_jobs_grace_is_not_restarted_by_a_retry() -> None:
    # Submitted two graces ago and still "not found": believed at once, not given a new grace.
    grace = 60.0
    hook = _hook()
    hook.get_video.side_effect = api.VeoJobNotFoundError("task not found")
    store = FakeStateStore(**{STATE_KEY: {**GOOD, "submitted_at": time.time() - 2 * grace}})
    with pytest.raises(AirflowFailException, match="task not found"):
        _create(hook, visibility_grace=grace).execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]
    hook.submit.assert_not_called()


def test_a_reused_jobs_wait_keeps_the_grace_of_its_submission() -> None:
    grace = 60.0
    submitted_at = time.time() - 45
    hook = _hook()
    hook.get_video.side_effect = api.VeoJobNotFoundError("not stored yet")
    store = FakeStateStore(**{STATE_KEY: {**GOOD, "submitted_at": submitted_at}})
    operator = VeoGenerateVideoOperator(task_id="g", deferrable=True, visibility_grace=grace, **GENERATE)
    operator.hook = hook  # type: ignore[misc]
    with pytest.raises(TaskDeferred) as info:
        operator.execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]
    assert info.value.trigger.visible_by == submitted_at + grace  # 15 s left, not a fresh minute
    hook.submit.assert_not_called()


@pytest.mark.parametrize(
    "not_visible",
    [api.VeoJobNotFoundError("not stored yet"), api.VeoModelAccessError("This token has no access to model")],
)
def test_a_reused_job_not_visible_within_its_grace_is_waited_for_not_paid_again(
    not_visible: Exception,
) -> None:
    # A retry moments after the create: the gateway may not have stored the job, and an older gateway
    # answers a model-limited key with 403 until it has.
    hook = _hook()
    hook.get_video.side_effect = not_visible
    store = FakeStateStore(**{STATE_KEY: {**GOOD, "submitted_at": time.time() - 5}})
    operator = VeoGenerateVideoOperator(task_id="g", deferrable=True, visibility_grace=60.0, **GENERATE)
    operator.hook = hook  # type: ignore[misc]
    with pytest.raises(TaskDeferred):
        operator.execute({"ti": FakeTI(), "task_state_store": store})  # type: ignore[arg-type]
    hook.submit.assert_not_called()


# --------------------------------------------------------------------------------------------
# Reference images are read once per try, for the fingerprint and the manifest alike
# --------------------------------------------------------------------------------------------


def test_reference_images_are_read_once_and_their_digests_reach_the_manifest() -> None:
    hook = _hook()
    hook.load_references.return_value = [("first.png", PNG, "image/png")]
    hook.submit.return_value = api.VideoJob.from_json(job_json("task_new", "completed"))
    hook.download_video.return_value = {"video_id": "task_new", "input_reference": ["/f/first.png"]}
    operator = VeoGenerateVideoOperator(
        task_id="g", input_reference="/f/first.png", write_manifest=True, deferrable=False, **GENERATE
    )
    operator.hook = hook  # type: ignore[misc]
    with (
        mock.patch("airflow_provider_veo.publishing.write_manifest") as write_manifest,
        mock.patch("airflow_provider_veo.publishing.emit_asset_events"),
        mock.patch("airflow_provider_veo.publishing.record_hook_lineage"),
    ):
        operator.execute({"ti": FakeTI(), "task_state_store": FakeStateStore()})  # type: ignore[arg-type]
    assert hook.load_references.call_count == 1
    assert write_manifest.call_args.args[-1] == [hashlib.sha256(PNG).hexdigest()]


def test_a_deferred_task_hands_the_digests_to_its_resume() -> None:
    hook = _hook()
    hook.load_references.return_value = [("first.png", PNG, "image/png")]
    hook.submit.return_value = api.VideoJob.from_json(job_json("task_new", "queued"))
    operator = VeoGenerateVideoOperator(
        task_id="g", input_reference="/f/first.png", write_manifest=True, deferrable=True, **GENERATE
    )
    operator.hook = hook  # type: ignore[misc]
    with pytest.raises(TaskDeferred) as info:
        operator.execute({"ti": FakeTI(), "task_state_store": FakeStateStore()})  # type: ignore[arg-type]
    digests = [hashlib.sha256(PNG).hexdigest()]
    assert info.value.kwargs == {"reference_sha256s": digests}
    hook.download_video.return_value = {"video_id": "task_new", "input_reference": ["/f/first.png"]}
    event = api.job_event(api.VideoJob.from_json(job_json("task_new", "completed")))
    with (
        mock.patch("airflow_provider_veo.publishing.write_manifest") as write_manifest,
        mock.patch("airflow_provider_veo.publishing.emit_asset_events"),
        mock.patch("airflow_provider_veo.publishing.record_hook_lineage"),
    ):
        operator.execute_complete({"ti": FakeTI()}, event, **info.value.kwargs)  # type: ignore[arg-type]
    assert hook.load_references.call_count == 1  # not read again on resume
    assert write_manifest.call_args.args[-1] == digests


def test_a_reference_file_name_that_is_not_utf8_is_sent_with_a_stand_in(tmp_path: Path) -> None:
    # Linux file names are bytes; one that is not UTF-8 reaches Python with lone surrogates.
    path = tmp_path / os.fsdecode(b"frame-\xff.png")
    path.write_bytes(PNG)
    request = VideoRequest.build(prompt="p", input_reference=path)
    [(name, content, content_type)] = VeoHook().load_references(request)
    assert (name, content, content_type) == ("frame-?.png", PNG, "image/png")
    name.encode("utf-8")  # what the multipart header carries can be encoded
