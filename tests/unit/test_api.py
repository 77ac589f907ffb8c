"""The API knowledge module: validation, jobs, errors, retries, polling decisions, names."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    MODELS,
    JobState,
    JobWatch,
    RetryPolicy,
    VeoAPIError,
    VeoAuthenticationError,
    VeoBadRequestError,
    VeoGenerationFailedError,
    VeoInputError,
    VeoInsufficientCreditError,
    VeoPermissionError,
    VeoSubmissionUncertainError,
    VeoTimeoutError,
    VeoTransientError,
    VideoJob,
    build_request,
    job_from_event,
    job_state,
)

from .conftest import JPEG, PNG, WEBP, error_json, job_json

# --------------------------------------------------------------------------------------------
# build_request: refusals
# --------------------------------------------------------------------------------------------


def _refused(field: str, **kwargs: Any) -> VeoInputError:
    kwargs.setdefault("prompt", "a cat surfing a wave")
    with pytest.raises(VeoInputError) as info:
        build_request(**kwargs)
    assert info.value.field == field
    assert f"`{field}`" in str(info.value)
    return info.value


@pytest.mark.parametrize("prompt", ["", "   \n", None, 42, ["a cat"], b"a cat"])
def test_prompt_must_be_non_empty_text(prompt: object) -> None:
    error = _refused("prompt", prompt=prompt)
    assert "non-empty" in str(error)


def test_prompt_is_required() -> None:
    with pytest.raises(VeoInputError, match="`prompt`"):
        build_request()


@pytest.mark.parametrize("model", [None, 3.1, ["veo3.1"], "", "  "])
def test_model_must_be_a_name(model: object) -> None:
    error = _refused("model", model=model)
    for name in MODELS:
        assert name in str(error)


@pytest.mark.parametrize(
    ("model", "seconds", "allowed"),
    [
        ("veo3.1-fast", 5, "4, 6, 8"),
        ("veo3.1-fast", "5", "4, 6, 8"),
        ("veo3.1", 10, "4, 6, 8"),
        ("veo3-pro", 4, "8"),
        ("veo3.1-pro", "6", "8"),
        ("veo3.1-fast", "abc", "4, 6, 8"),
        ("veo3.1-fast", 4.5, "4, 6, 8"),
        ("veo3.1-fast", True, "4, 6, 8"),
        ("veo3.1-fast", -4, "4, 6, 8"),
        ("veo3.1-fast", 0, "4, 6, 8"),
        ("veo3.1-fast", [8], "4, 6, 8"),
        ("veo3.1-fast", {"s": 8}, "4, 6, 8"),
    ],
)
def test_seconds_not_allowed(model: str, seconds: object, allowed: str) -> None:
    error = _refused("seconds", model=model, seconds=seconds)
    assert allowed in str(error)
    assert repr(seconds) in str(error) or type(seconds).__name__ in str(error)


@pytest.mark.parametrize("seconds", ["abc", 4.5, True, -4, [4]])
def test_bad_seconds_refused_for_unknown_model_too(seconds: object) -> None:
    _refused("seconds", model="veo9-ultra", seconds=seconds)


@pytest.mark.parametrize(
    ("model", "size", "allowed"),
    [
        ("veo3.1-fast", "1080x1920", "1280x720, 720x1280, 1920x1080, 3840x2160"),
        ("veo3.1-fast", "2160x3840", "1280x720, 720x1280, 1920x1080, 3840x2160"),
        ("veo3.1", "big", "1280x720, 720x1280, 1920x1080, 3840x2160"),
        ("veo3.1-fast", "16x9", "1280x720, 720x1280, 1920x1080, 3840x2160"),
        ("veo3.1-fast", 1280, "1280x720, 720x1280, 1920x1080, 3840x2160"),
        ("veo3-pro", "1x1", "16x9"),
        ("veo3-pro", "1024x1024", "9x16"),
        ("veo3.1-pro", "big", "16x9"),
        ("veo3-fast", "0x9", "16x9"),
        ("veo3", 169, "16x9"),
        ("veo9-ultra", "wide", "16x9"),
    ],
)
def test_size_not_allowed(model: str, size: object, allowed: str) -> None:
    error = _refused("size", model=model, size=size)
    assert allowed in str(error)


@pytest.mark.parametrize(
    ("model", "count", "limit_text"),
    [("veo3.1-fast", 2, "one (the first frame)"), ("veo3.1", 3, "2 (first frame")],
)
def test_too_many_references(model: str, count: int, limit_text: str) -> None:
    refs = [f"/frames/{i}.png" for i in range(count)]
    error = _refused("input_reference", model=model, input_reference=refs)
    assert limit_text in str(error)
    assert f"got {count}" in str(error)


def test_too_many_references_on_fast_points_to_veo31() -> None:
    error = _refused("input_reference", model="veo3.1-fast", input_reference=["a.png", "b.png"])
    assert "'veo3.1'" in str(error)


@pytest.mark.parametrize("item", [5, None, "", "   ", b"a.png", {"path": "a.png"}])
def test_reference_item_must_be_a_location(item: object) -> None:
    error = _refused("input_reference", model="veo3.1", input_reference=["first.png", item])
    assert "item 1" in str(error)
    assert "path, URI or URL" in str(error)


@pytest.mark.parametrize("container", [{"first": "a.png"}, {"a.png"}, 42, b"a.png"])
def test_reference_container_must_be_a_list(container: object) -> None:
    error = _refused("input_reference", input_reference=container)
    assert "path, URI or URL" in str(error)
    assert type(container).__name__ in str(error)


# --------------------------------------------------------------------------------------------
# build_request: accepted
# --------------------------------------------------------------------------------------------


def test_unknown_model_passes_with_a_warning() -> None:
    request = build_request(prompt="p", model="veo4-preview", seconds=5, size="1920x1080")
    assert request.model == "veo4-preview"
    assert request.seconds == 5
    assert any("veo4-preview" in w and "not one this provider knows" in w for w in request.warnings)
    assert ("seconds", "5") in request.form_fields()


def test_known_model_has_no_warning() -> None:
    assert build_request(prompt="p", model="veo3.1", seconds=8, size="1920x1080").warnings == ()


@pytest.mark.parametrize("size", ["1920x1080", "3840x2160"])
@pytest.mark.parametrize("seconds", [4, 6, None])
def test_high_resolution_not_8_seconds_warns(size: str, seconds: int | None) -> None:
    request = build_request(prompt="p", model="veo3.1-fast", seconds=seconds, size=size)
    assert request.size == size
    assert any(size in w and "8-second" in w for w in request.warnings), request.warnings


def test_high_resolution_at_8_seconds_does_not_warn() -> None:
    assert build_request(prompt="p", model="veo3.1-fast", seconds=8, size="3840x2160").warnings == ()


@pytest.mark.parametrize("model", ["veo3.1-pro", "veo3-pro", "veo3-fast", "veo3"])
def test_fixed_seconds_models_do_not_send_seconds(model: str) -> None:
    request = build_request(prompt="p", model=model, seconds=8, size="9x16")
    names = [name for name, _ in request.form_fields()]
    assert names == ["model", "prompt", "size"]
    assert any("8-second" in w for w in request.warnings)


def test_form_fields_order_and_values() -> None:
    request = build_request(prompt="  a cat  ", model=" veo3.1 ", seconds="8", size="1280X720")
    assert request.form_fields() == [
        ("model", "veo3.1"),
        ("prompt", "  a cat  "),
        ("seconds", "8"),
        ("size", "1280x720"),
    ]


def test_form_fields_always_carry_seconds_for_models_that_take_it() -> None:
    # The gateway passes an absent `seconds` upstream, where Veo renders and bills 8.
    assert build_request(prompt="a cat").form_fields() == [
        ("model", "veo3.1-fast"),
        ("prompt", "a cat"),
        ("seconds", str(api.DEFAULT_SECONDS)),
    ]
    assert ("seconds", "4") in build_request(prompt="a cat", model="veo3.1").form_fields()


def test_form_fields_leave_out_what_was_not_given() -> None:
    assert build_request(prompt="a cat", model="veo3-pro").form_fields() == [
        ("model", "veo3-pro"),
        ("prompt", "a cat"),
    ]
    assert build_request(prompt="a cat", model="veo9-new").form_fields() == [
        ("model", "veo9-new"),
        ("prompt", "a cat"),
    ]


@pytest.mark.parametrize("seconds", ["8", 8, 8.0, " 8 "])
def test_seconds_as_string_accepted(seconds: object) -> None:
    assert build_request(prompt="p", seconds=seconds).seconds == 8


def test_orientation_hint_accepted_for_self_developed_models() -> None:
    assert build_request(prompt="p", model="veo3-pro", size="9x16").size == "9x16"
    assert build_request(prompt="p", model="veo3-pro", size="1920x1080").size == "1920x1080"


def test_references_single_string_and_pathlike(tmp_path: Path) -> None:
    assert build_request(prompt="p", input_reference=" /a.png ").references == ("/a.png",)
    path = tmp_path / "first.png"
    assert build_request(prompt="p", input_reference=path).references == (str(path),)
    request = build_request(prompt="p", model="veo3.1", input_reference=["a.png", path])
    assert request.references == ("a.png", str(path))
    assert build_request(prompt="p", input_reference=[]).references == ()


def test_first_and_last_frame_on_veo31_with_short_clip_warns() -> None:
    request = build_request(prompt="p", model="veo3.1", seconds=4, input_reference=["a.png", "b.png"])
    assert any("First + last frame" in w for w in request.warnings)


# --------------------------------------------------------------------------------------------
# Jobs and states
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", JobState.PENDING),
        ("QUEUED", JobState.PENDING),
        ("in_progress", JobState.RUNNING),
        ("IN_PROGRESS", JobState.RUNNING),
        ("completed", JobState.SUCCEEDED),
        ("Completed", JobState.SUCCEEDED),
        ("SUCCESS", JobState.SUCCEEDED),
        ("succeed", JobState.SUCCEEDED),
        (" succeeded ", JobState.SUCCEEDED),
        ("failed", JobState.FAILED),
        ("error", JobState.FAILED),
        ("ERROR", JobState.FAILED),
        ("FAILURE", JobState.FAILED),
        ("rendering-ish", JobState.UNKNOWN),
        ("", JobState.UNKNOWN),
    ],
)
def test_job_state(status: str, state: JobState) -> None:
    assert api.job_state(status) is state


def test_only_succeeded_and_failed_are_terminal() -> None:
    assert {s for s in JobState if s.is_terminal} == {JobState.SUCCEEDED, JobState.FAILED}


def test_video_job_from_json() -> None:
    job = VideoJob.from_json(job_json(status="completed", progress="100", video_url="https://cdn/x.mp4"))
    assert job.video_id == "veo3.1:1764905797-816jUFZAkM"
    assert job.state is JobState.SUCCEEDED
    assert job.progress == 100
    assert job.seconds == "4"
    assert job.video_url == "https://cdn/x.mp4"
    assert job.created_at == 1764905797
    assert VideoJob.from_dict(json.loads(json.dumps(job.to_dict()))) == job


def test_video_job_task_id_alias_and_empty_seconds() -> None:
    payload = job_json(seconds="", status="IN_PROGRESS")
    payload["task_id"] = payload.pop("id")
    job = VideoJob.from_json(payload)
    assert job.video_id == "veo3.1:1764905797-816jUFZAkM"
    assert job.seconds is None
    assert job.state is JobState.RUNNING


def test_video_job_wrapped_in_data() -> None:
    assert VideoJob.from_json({"data": job_json("task_abc")}).video_id == "task_abc"


def test_video_job_error_object() -> None:
    job = VideoJob.from_json(
        job_json(status="failed", error={"code": "content_policy", "message": "The prompt was refused"})
    )
    assert (job.error_code, job.error_message) == ("content_policy", "The prompt was refused")
    failure = job.failure()
    assert isinstance(failure, VeoGenerationFailedError)
    assert failure.code == "content_policy"
    assert "content_policy" in str(failure)
    assert "The prompt was refused" in str(failure)
    assert job.video_id in str(failure)


def test_video_job_error_string() -> None:
    job = VideoJob.from_json(job_json(status="error", error="upstream exploded"))
    assert job.error_message == "upstream exploded"
    assert job.error_code is None


@pytest.mark.parametrize(
    "payload", [{"object": "video", "status": "queued"}, {"id": ""}, {"id": 12}, [job_json()], "x"]
)
def test_video_job_without_id_raises(payload: object) -> None:
    with pytest.raises(VeoAPIError):
        VideoJob.from_json(payload)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

REQUEST_ID = "(request id: 20251205123456789abc)"


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (
            400,
            error_json(f"seconds must be 4, 6 or 8 {REQUEST_ID}", "invalid_request"),
            VeoBadRequestError,
            0,
        ),
        (401, error_json(f"Invalid token {REQUEST_ID}"), VeoAuthenticationError, 0),
        (402, error_json(f"Payment required {REQUEST_ID}"), VeoInsufficientCreditError, 0),
        (403, error_json(f"user quota is not enough {REQUEST_ID}"), VeoInsufficientCreditError, 0),
        (403, error_json(f"Insufficient balance {REQUEST_ID}"), VeoInsufficientCreditError, 0),
        (403, error_json(f"model not allowed for this token {REQUEST_ID}"), VeoPermissionError, 0),
        (404, error_json(f"task not found {REQUEST_ID}"), api.VeoJobNotFoundError, 0),
        (429, error_json(f"Too many requests {REQUEST_ID}"), VeoTransientError, 1),
        (500, error_json(f"bad model {REQUEST_ID}", "invalid_request"), VeoBadRequestError, 0),
        (500, error_json(f"internal error {REQUEST_ID}"), VeoTransientError, 1),
        (502, error_json(f"bad gateway {REQUEST_ID}"), VeoTransientError, 1),
        (503, error_json(f"no available channel {REQUEST_ID}", "model_not_found"), VeoTransientError, 1),
        (504, error_json(f"gateway timeout {REQUEST_ID}"), VeoTransientError, 1),
        (524, error_json(f"a timeout occurred {REQUEST_ID}"), VeoTransientError, 1),
    ],
)
def test_error_from_response(status: int, body: dict[str, Any], kind: type, retryable: int) -> None:
    error = api.error_from_response(status, json.dumps(body).encode())
    assert type(error) is kind
    assert error.status_code == status
    assert error.retryable is bool(retryable)
    assert REQUEST_ID in str(error)
    assert body["error"]["message"] in str(error)
    assert error.code == (body["error"]["code"] or None)
    if body["error"]["code"]:
        assert body["error"]["code"] in str(error)


def test_credit_error_says_so_plainly() -> None:
    assert "out of credit" in str(api.error_from_response(402, b"{}"))
    assert "API key" in str(api.error_from_response(401, b"{}"))


def test_429_honours_retry_after_and_never_arrived() -> None:
    error = api.error_from_response(429, json.dumps(error_json("slow down")), "7")
    assert isinstance(error, VeoTransientError)
    assert error.retry_after == 7.0
    assert error.job_may_exist is False
    assert api.error_from_response(429, b"", "Wed, 21 Oct 2015 07:28:00 GMT").retry_after is None


def test_5xx_may_have_arrived() -> None:
    error = api.error_from_response(502, b"")
    assert isinstance(error, VeoTransientError)
    assert error.job_may_exist is True
    assert "(empty body)" in str(error)


def test_error_from_non_json_body() -> None:
    body = b"<html><body>502 Bad Gateway (request id: abc-123)</body></html>"
    error = api.error_from_response(502, body)
    assert isinstance(error, VeoTransientError)
    assert "502 Bad Gateway" in str(error)
    assert "(request id: abc-123)" in str(error)
    assert "HTTP 502" in str(error)


def test_error_from_plain_envelopes() -> None:
    assert "no such task" in str(api.error_from_response(404, '{"error": "no such task"}'))
    assert "gone" in str(api.error_from_response(404, '{"message": "gone"}'))


# --------------------------------------------------------------------------------------------
# RetryPolicy
# --------------------------------------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=60.0)


def _transient(*, arrived: bool = True, retry_after: float | None = None) -> VeoTransientError:
    return VeoTransientError("HTTP 503", status_code=503, retry_after=retry_after, job_may_exist=arrived)


def test_get_retried_on_transient_with_growing_backoff() -> None:
    for attempt in (1, 2, 3):
        delay = POLICY.delay_before_retry(attempt, _transient(), method="GET")
        assert delay is not None
        assert 0 <= delay <= POLICY.base_delay * 2 ** (attempt - 1)


def test_get_not_retried_on_permanent_errors() -> None:
    for error in (VeoBadRequestError("x"), VeoAuthenticationError("x"), VeoInputError("f", "x")):
        assert POLICY.delay_before_retry(1, error, method="GET") is None


def test_gives_up_at_max_attempts() -> None:
    assert POLICY.delay_before_retry(3, _transient(), method="GET") is not None
    assert POLICY.delay_before_retry(4, _transient(), method="GET") is None
    assert POLICY.delay_before_retry(5, _transient(arrived=False), method="POST") is None


def test_post_retried_only_when_request_never_arrived() -> None:
    assert POLICY.delay_before_retry(1, _transient(arrived=True), method="POST") is None
    assert POLICY.delay_before_retry(1, _transient(arrived=True), method="post") is None
    assert POLICY.delay_before_retry(1, _transient(arrived=False), method="POST") is not None


def test_retry_after_honoured() -> None:
    for attempt in (1, 3):
        delay = POLICY.delay_before_retry(attempt, _transient(retry_after=12.0), method="GET")
        assert delay is not None
        assert 12.0 <= delay <= 12.0 + 0.1 * POLICY.base_delay * 2 ** (attempt - 1)
    capped = POLICY.delay_before_retry(1, _transient(retry_after=10_000), method="GET")
    assert capped is not None and capped <= POLICY.max_delay * 5 + POLICY.base_delay


def test_final_error_for_post_that_may_have_arrived() -> None:
    error = POLICY.final_error(_transient(arrived=True), method="POST")
    assert isinstance(error, VeoSubmissionUncertainError)
    assert error.status_code == 503
    assert "second job" in str(error)
    assert "HTTP 503" in str(error)


def test_final_error_otherwise_unchanged() -> None:
    never_arrived = _transient(arrived=False)
    assert POLICY.final_error(never_arrived, method="POST") is never_arrived
    maybe_arrived = _transient(arrived=True)
    assert POLICY.final_error(maybe_arrived, method="GET") is maybe_arrived
    bad = VeoBadRequestError("bad")
    assert POLICY.final_error(bad, method="POST") is bad


# --------------------------------------------------------------------------------------------
# JobWatch and events
# --------------------------------------------------------------------------------------------


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str, *args: object) -> None:
        self.lines.append(("info", msg % args))

    def warning(self, msg: str, *args: object) -> None:
        self.lines.append(("warning", msg % args))


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _job(status: str, progress: int | None = 0, **fields: Any) -> VideoJob:
    return VideoJob.from_json(job_json("vid-1", status, progress=progress, **fields))


def test_watch_logs_changes_once() -> None:
    log, clock = RecordingLog(), FakeClock()
    watch = JobWatch("vid-1", 10.0, clock.now + 3600, log, clock=clock)
    for outcome in [_job("queued"), _job("queued"), _job("in_progress", 30), _job("in_progress", 30)]:
        assert isinstance(watch.after_poll(outcome), float)
    watch.after_poll(_job("in_progress", 60))
    assert log.lines == [
        ("info", "Video vid-1: status 'queued', progress 0%"),
        ("info", "Video vid-1: status 'in_progress', progress 30%"),
        ("info", "Video vid-1: status 'in_progress', progress 60%"),
    ]


def test_watch_unknown_status_is_a_warning_and_not_terminal() -> None:
    log, clock = RecordingLog(), FakeClock()
    watch = JobWatch("vid-1", 10.0, clock.now + 3600, log, clock=clock)
    assert isinstance(watch.after_poll(_job("RENDERING", None)), float)
    assert isinstance(watch.after_poll(_job("RENDERING", None)), float)
    assert len(log.lines) == 1
    level, line = log.lines[0]
    assert level == "warning"
    assert "'RENDERING'" in line and "not one this provider knows" in line
    event = watch.after_poll(_job("SUCCESS", 100))
    assert isinstance(event, dict) and event["status"] == "success"


def test_watch_transient_error_keeps_polling() -> None:
    log, clock = RecordingLog(), FakeClock()
    watch = JobWatch("vid-1", 10.0, clock.now + 3600, log, clock=clock)
    assert isinstance(watch.after_poll(_transient()), float)
    assert log.lines[0][0] == "warning" and "HTTP 503" in log.lines[0][1]


def test_watch_terminal_events() -> None:
    clock = FakeClock()
    watch = JobWatch("vid-1", 10.0, clock.now + 3600, RecordingLog(), clock=clock)
    done = watch.after_poll(_job("completed", 100, video_url="https://cdn/v.mp4"))
    assert done == {
        "status": "success",
        "video_id": "vid-1",
        "job": _job("completed", 100, video_url="https://cdn/v.mp4").to_dict(),
        "message": "",
    }
    failed = watch.after_poll(_job("error", error={"code": "policy", "message": "refused"}))
    assert isinstance(failed, dict)
    assert failed["status"] == "failed"
    assert "policy" in failed["message"] and "refused" in failed["message"]
    json.dumps([done, failed])  # events travel through the triggerer as JSON


def test_watch_times_out_after_end_time() -> None:
    clock = FakeClock(1_000.0)
    watch = JobWatch("vid-1", 10.0, 1_030.0, RecordingLog(), clock=clock)
    assert isinstance(watch.after_poll(_job("in_progress")), float)
    clock.now = 1_025.0
    last = watch.after_poll(_job("in_progress"))
    assert isinstance(last, float) and last <= 5.0
    clock.now = 1_030.0
    event = watch.after_poll(_job("in_progress"))
    assert isinstance(event, dict)
    assert event["status"] == "timeout"
    assert event["video_id"] == "vid-1"
    assert event["job"] is None
    clock.now = 2_000.0
    assert watch.after_poll(_transient())["status"] == "timeout"  # type: ignore[index]


def test_watch_polls_on_schedule_whatever_each_poll_took() -> None:
    """The k-th poll is due k intervals plus the watch's phase (within +-10% of one) after the first
    outcome, whatever each poll took: neither the phase nor latency adds up, and the gaps are one
    interval."""
    clock = FakeClock()
    watch = JobWatch("vid-1", 20.0, clock.now + 10**6, RecordingLog(), clock=clock)
    rng = random.Random(7)
    first_answer = clock.now
    polled_at = []
    for k in range(1, 301):
        delay = watch.after_poll(_job("in_progress"))
        assert isinstance(delay, float)
        clock.now += delay
        polled_at.append(clock.now)
        assert abs(clock.now - first_answer - 20.0 * k) <= 2.0 + 1e-9, (k, clock.now - first_answer)
        clock.now += rng.uniform(0.0, 1.5)  # this poll's answer took this long
    offsets = {round(t - first_answer - 20.0 * k, 6) for k, t in enumerate(polled_at, 1)}
    assert len(offsets) == 1, "the phase is the watch's own, the same for every poll"
    assert all(abs(b - a - 20.0) < 1e-6 for a, b in itertools.pairwise(polled_at))


def test_watches_started_together_are_spread_around_the_interval() -> None:
    """A thousand waits started at once (a triggerer restart) poll spread over +-10% of an interval
    around each due time: some early, some late, none in lock-step."""
    phases = []
    for _ in range(1000):
        clock = FakeClock()
        watch = JobWatch(
            "vid-1", 10.0, clock.now + 10**6, RecordingLog(), clock=clock, schedule_from=clock.now
        )
        delay = watch.after_poll(_job("in_progress"))
        assert isinstance(delay, float)
        phases.append(delay - 10.0)
    assert all(-1.0 <= p <= 1.0 for p in phases)
    assert min(phases) < -0.8 and max(phases) > 0.8  # around the interval, not only above it
    assert len(set(phases)) > 990


def test_watch_counts_from_the_start_not_from_a_late_first_answer() -> None:
    """A first poll held back (the in-flight limit pacing a burst) does not delay the later polls:
    they are due from when the wait began."""
    clock = FakeClock()
    started = clock.now
    watch = JobWatch("vid-1", 10.0, clock.now + 10**6, RecordingLog(), clock=clock, schedule_from=started)
    clock.now += 7.8  # queued behind a burst, then answered
    delay = watch.after_poll(_job("in_progress"))
    assert delay == 5.0  # slot 1 is 1.2-3.2 s away, but a late poll is followed after half an interval
    clock.now += delay
    for k in range(2, 6):
        clock.now += watch.after_poll(_job("in_progress"))  # type: ignore[operator]
        assert abs(clock.now - started - 10.0 * k) <= 1.0 + 1e-9


def test_watch_skips_slots_a_slow_poll_missed_and_never_bursts() -> None:
    """A poll answered 2.5 intervals late (a stalled API) is followed after at least half an interval,
    the slots it missed are not made up, and the schedule holds on from there."""
    clock = FakeClock()
    watch = JobWatch("vid-1", 10.0, clock.now + 10**6, RecordingLog(), clock=clock)
    first_answer = clock.now
    clock.now += watch.after_poll(_job("in_progress"))  # type: ignore[operator]
    clock.now += 25.0  # the second poll took 25 s: slots 2 and 3 went by meanwhile
    delays = []
    for _ in range(4):
        delay = watch.after_poll(_job("in_progress"))
        assert isinstance(delay, float)
        delays.append(delay)
        clock.now += delay
    assert all(d >= 5.0 for d in delays)
    assert abs(clock.now - first_answer - 70.0) <= 1.0 + 1e-9  # slots 4, 5, 6 and 7


def test_a_wait_from_a_status_read_polls_first_one_interval_after_it() -> None:
    """A trigger handed a job its task just read (the create's answer) does not poll at once; after a
    triggerer restart it polls at the job's next slot, never more than an interval and the phase away."""
    clock = FakeClock()
    read_at = clock.now
    clock.now += 2.0  # the deferral reached the triggerer
    fresh = JobWatch("vid-1", 15.0, clock.now + 10**6, RecordingLog(), clock=clock, schedule_from=read_at)
    assert 15.0 * 0.9 - 2.0 <= fresh.until_first_poll() <= 15.0 * 1.1 - 2.0 + 1e-9
    clock.now = read_at + 15.0 * 40 + 7.0  # restarted ten minutes on
    restarted = JobWatch("vid-1", 15.0, clock.now + 10**6, RecordingLog(), clock=clock, schedule_from=read_at)
    first = restarted.until_first_poll()
    assert 0.0 <= first <= 16.5
    assert abs(clock.now + first - read_at - 15.0 * 41) <= 1.5 + 1e-9
    ahead = JobWatch("vid-1", 15.0, 10**9, RecordingLog(), clock=clock, schedule_from=clock.now + 3600)
    assert ahead.until_first_poll() <= 16.5  # a reader's clock an hour ahead


def test_a_six_minute_job_costs_at_most_25_gets_after_its_create() -> None:
    for seed in range(200):
        random.seed(seed)
        clock = FakeClock(0.0)
        watch = JobWatch("vid-1", 15.0, 10**6, RecordingLog(), clock=clock)
        gets = 0
        step = watch.after_poll(_job("queued"))  # the create's answer
        while isinstance(step, float):
            clock.now += step
            gets += 1
            step = watch.after_poll(_job("completed" if clock.now >= 360.0 else "in_progress", 50))
        assert gets <= 25, seed


def test_job_from_event_success() -> None:
    job = _job("completed", 100)
    assert api.job_from_event(api.job_event(job)) == job


def test_job_from_event_failed() -> None:
    job = _job("failed", error={"code": "content_policy", "message": "no"})
    with pytest.raises(VeoGenerationFailedError) as info:
        api.job_from_event(api.job_event(job))
    assert info.value.code == "content_policy"
    assert "no" in str(info.value)


def test_job_from_event_timeout() -> None:
    with pytest.raises(VeoTimeoutError, match="vid-1") as info:
        api.job_from_event(api.timeout_event("vid-1"))
    assert info.value.retryable


def test_job_from_event_error() -> None:
    event = api.error_event("vid-1", VeoAuthenticationError("bad key"))
    with pytest.raises(VeoAPIError, match="bad key") as info:
        api.job_from_event(event)
    assert not info.value.retryable


# --------------------------------------------------------------------------------------------
# File names, URLs, images
# --------------------------------------------------------------------------------------------

HOSTILE_IDS = [
    "veo3.1:1764905797-816jUFZAkM",
    "a/b",
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "a:b",
    "a\x00b",
    "a\\b",
    "x" * 1000,
    "x" * 999 + "y",
    "né/é",
    ".hidden",
    "CON",
]


@pytest.mark.parametrize("video_id", HOSTILE_IDS)
def test_video_filename_is_one_safe_name(video_id: str, tmp_path: Path) -> None:
    name = api.video_filename(video_id)
    assert name.endswith(".mp4")
    assert len(name) <= 200
    assert not name.startswith(".")
    assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in name), name
    assert os.path.basename(name) == name
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_video_filename_keeps_plain_ids() -> None:
    assert api.video_filename("task_pa9CKKtYlTdxO7IIHOKKhXfjxEu4EQoR") == (
        "task_pa9CKKtYlTdxO7IIHOKKhXfjxEu4EQoR.mp4"
    )


def test_video_filename_distinct_ids_distinct_names() -> None:
    ids = [*HOSTILE_IDS, "a_b", "a.b", "a-b", "a?b", "a b", "veo3.1_1764905797-816jUFZAkM"]
    names = [api.video_filename(i) for i in ids]
    assert len(set(names)) == len(ids)


def test_video_path_escapes_the_id() -> None:
    assert api.video_path("veo3.1:17-ab") == "/v1/videos/veo3.1:17-ab"
    assert api.video_path("a/b?c") == "/v1/videos/a%2Fb%3Fc"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (None, "https://api.cometapi.com"),
        ("", "https://api.cometapi.com"),
        ("   ", "https://api.cometapi.com"),
        ("https://api.cometapi.com/v1", "https://api.cometapi.com"),
        ("https://api.cometapi.com/v1/", "https://api.cometapi.com"),
        ("https://api.cometapi.com/", "https://api.cometapi.com"),
        ("HTTPS://proxy.example/V1", "https://proxy.example"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("api.cometapi.com", "https://api.cometapi.com"),
        ("api.cometapi.com/v1", "https://api.cometapi.com"),
        ("https://gw.example/comet/", "https://gw.example/comet"),
    ],
)
def test_base_url_from(host: str | None, expected: str) -> None:
    assert api.base_url_from(host) == expected


def test_base_url_from_schema_and_port() -> None:
    assert api.base_url_from("localhost", "http", 8080) == "http://localhost:8080"
    assert api.base_url_from("http://localhost:9000", None, 8080) == "http://localhost:9000"


@pytest.mark.parametrize("host", ["ftp://files.example", "file:///etc/passwd", "localhost"])
def test_base_url_from_refuses_other_schemes(host: str) -> None:
    schema = "ws" if host == "localhost" else None
    with pytest.raises(VeoInputError) as info:
        api.base_url_from(host, schema)
    assert info.value.field == "host"
    assert "http://" in str(info.value)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (b"GIF89a" + bytes(10), None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"", None),
        (b"\x00\x00\x00\x18ftypmp42", None),
    ],
)
def test_sniff_image_type(head: bytes, expected: str | None) -> None:
    assert api.sniff_image_type(head[:16]) == expected


def test_check_reference_image() -> None:
    assert api.check_reference_image(0, "first.png", PNG) == "image/png"
    with pytest.raises(VeoInputError) as info:
        api.check_reference_image(1, "notes.txt", b"hello, world, this is text")
    assert info.value.field == "input_reference"
    assert "item 1 (notes.txt)" in str(info.value)
    assert "PNG, JPEG or WebP" in str(info.value)


def test_check_reference_image_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.models, "MAX_REFERENCE_BYTES", 1024)
    api.check_reference_image(0, "ok.png", PNG.ljust(1024, b"\x00"))
    with pytest.raises(VeoInputError) as info:
        api.check_reference_image(0, "huge.png", PNG.ljust(1025, b"\x00"))
    assert info.value.field == "input_reference"
    assert "1025 bytes" in str(info.value)


def test_real_limit_is_20_mib() -> None:
    too_big = PNG + bytes(api.MAX_REFERENCE_BYTES)
    with pytest.raises(VeoInputError, match="20 MiB"):
        api.check_reference_image(0, "huge.png", too_big)


def test_api_module_imports_no_airflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_veo.api; print(any(m.split('.')[0] == 'airflow' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_module_logger_name() -> None:
    assert api.log.name == "airflow_provider_veo.api"
    assert isinstance(api.log, logging.Logger)


def test_veo31_takes_the_self_developed_routes_orientation_hints() -> None:
    # Seed 002's own example: model=veo3.1, size=16x9, first and last frame.
    request = build_request(prompt="p", model="veo3.1", size="16x9", input_reference=["a.png", "b.png"])
    assert request.size == "16x9" and len(request.references) == 2
    with pytest.raises(VeoInputError, match="size"):
        build_request(prompt="p", model="veo3.1-fast", size="16x9")


# --------------------------------------------------------------------------------------------
# The gateway (new-api) behind CometAPI: its error shapes, statuses and job bodies
# --------------------------------------------------------------------------------------------

GATEWAY_ERROR_SHAPES = [
    pytest.param(
        {"error": {"message": "Invalid token (request id: 2026R1)", "type": "new_api_error", "code": ""}},
        "Invalid token",
        None,
        id="envelope",
    ),
    pytest.param(
        {"code": "task_not_exist", "message": "task_not_exist", "data": None},
        "task_not_exist",
        "task_not_exist",
        id="flat",
    ),
    pytest.param(
        {"error": {"message": "Task not found", "type": "invalid_request_error"}},
        "Task not found",
        None,
        id="content",
    ),
]


@pytest.mark.parametrize(("body", "message", "code"), GATEWAY_ERROR_SHAPES)
def test_error_body_reads_the_three_gateway_shapes(
    body: dict[str, Any], message: str, code: str | None
) -> None:
    parsed = api.ErrorBody.parse(json.dumps(body))
    assert parsed.from_api is True
    assert message in parsed.message
    assert parsed.code == code


@pytest.mark.parametrize(
    "body", [b"", b"<html><body>502 Bad Gateway</body></html>", b'{"detail": "x"}', b"[1]"]
)
def test_error_body_of_a_proxy_is_not_the_apis(body: bytes) -> None:
    assert api.ErrorBody.parse(body).from_api is False


def test_request_id_from_the_header_when_the_body_has_none() -> None:
    flat = json.dumps({"code": "do_request_failed", "message": "upstream down", "data": None})
    error = api.error_from_response(500, flat, request_id="20261129abc")
    assert error.request_id == "20261129abc"
    assert "upstream down (request id: 20261129abc)" in str(error)
    assert "[code: do_request_failed]" in str(error)
    envelope = json.dumps(error_json("Invalid token (request id: in-body)"))
    assert str(api.error_from_response(401, envelope, request_id="in-header")).count("request id") == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"code": "insufficient_user_quota", "message": "用户额度不足, 剩余额度: ＄0.00", "data": None}),  # noqa: RUF001
        (
            403,
            {"code": "pre_consume_token_quota_failed", "message": "token quota is not enough", "data": None},
        ),
        (403, {"code": "", "message": "余额不足", "data": None}),
        (403, {"code": "", "message": "订阅额度已用尽", "data": None}),
        (403, error_json("Insufficient balance")),
        (402, {}),
    ],
)
def test_out_of_credit_in_every_form_says_so_plainly(status: int, body: dict[str, Any]) -> None:
    error = api.error_from_response(status, json.dumps(body))
    assert type(error) is VeoInsufficientCreditError
    assert error.retryable is False
    assert "out of credit" in str(error)


def test_401_says_invalid_expired_or_out_of_its_own_quota() -> None:
    error = api.error_from_response(401, json.dumps(error_json("Invalid token (request id: r)")))
    assert type(error) is VeoAuthenticationError
    assert all(word in str(error) for word in ("invalid", "expired", "quota"))


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, {"code": "task_not_exist", "message": "task_not_exist", "data": None}, api.VeoJobNotFoundError),
        (
            404,
            {"error": {"message": "Task not found", "type": "invalid_request_error"}},
            api.VeoJobNotFoundError,
        ),
        (404, error_json("Invalid URL (GET /v2/videos)", "invalid_url"), VeoBadRequestError),
        (400, {"code": "invalid_json", "message": "bad form", "data": None}, VeoBadRequestError),
    ],
)
def test_not_found_is_its_own_error(status: int, body: dict[str, Any], kind: type) -> None:
    assert type(api.error_from_response(status, json.dumps(body))) is kind


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 524])
def test_a_json_error_means_no_job_was_created(status: int) -> None:
    flat = json.dumps(
        {"code": "do_request_failed", "message": "当前分组上游负载已饱和，请稍后再试", "data": None}  # noqa: RUF001
    )
    error = api.error_from_response(status, flat)
    assert isinstance(error, VeoTransientError)
    assert error.job_may_exist is False
    assert RetryPolicy().delay_before_retry(1, error, method="POST") is not None


@pytest.mark.parametrize("status", [502, 504, 524])
@pytest.mark.parametrize("body", [b"", b"<html>Bad gateway</html>"])
def test_a_proxy_error_leaves_a_job_possible(status: int, body: bytes) -> None:
    error = api.error_from_response(status, body)
    assert isinstance(error, VeoTransientError) and error.job_may_exist is True
    assert RetryPolicy().delay_before_retry(1, error, method="POST") is None
    assert isinstance(RetryPolicy().final_error(error, method="POST"), VeoSubmissionUncertainError)


def test_a_429_without_retry_after_backs_off_on_its_own() -> None:
    error = api.error_from_response(429, json.dumps({"code": "", "message": "饱和", "data": None}))
    assert isinstance(error, VeoTransientError) and error.retry_after is None
    delays = [RetryPolicy(base_delay=1.0).delay_before_retry(3, error, method="POST") for _ in range(50)]
    assert all(d is not None and 0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_an_error_only_job_body_is_a_failed_job() -> None:
    job = VideoJob.from_json(
        {"error": {"message": "upstream rejected the prompt", "type": "upstream_error"}, "id": "task_x"}
    )
    assert job.status == "failed" and job.state is JobState.FAILED
    assert "upstream rejected the prompt" in str(job.failure())


def test_a_failed_job_without_an_error_explains_itself() -> None:
    job = VideoJob.from_json({"id": "task_x", "status": "failed", "progress": 100})
    message = str(job.failure())
    assert "no reason" in message and "safety" in message and "task_x" in message


def test_unknown_is_the_gateways_status_before_the_first_poll() -> None:
    assert job_state("unknown") is JobState.PENDING
    assert job_state("UNKNOWN").is_terminal is False
    assert VideoJob.from_json({"id": "task_x"}).state is JobState.PENDING


def test_two_references_warn_that_some_channels_use_only_the_first() -> None:
    request = build_request(prompt="p", model="veo3.1", seconds=8, input_reference=["a.png", "b.png"])
    assert any("use only the" in warning for warning in request.warnings)
    assert not any("use only the" in w for w in build_request(prompt="p", input_reference="a.png").warnings)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _not_found() -> api.VeoJobNotFoundError:
    return api.VeoJobNotFoundError("CometAPI answered HTTP 400: task_not_exist", status_code=400)


def test_watch_waits_out_not_found_within_the_grace_window() -> None:
    log, clock = RecordingLog(), Clock()
    watch = JobWatch("task_x", 5.0, end_time=5000.0, log=log, clock=clock, visible_by=1060.0)
    for _ in range(3):
        assert isinstance(watch.after_poll(_not_found()), float)
        clock.now += 15
    assert sum("not visible yet" in line for _, line in log.lines) == 1
    assert isinstance(watch.after_poll(VideoJob(video_id="task_x", status="queued")), float)
    clock.now = 1061.0
    event = watch.after_poll(_not_found())
    assert isinstance(event, dict) and event["status"] == "error"
    assert "task_x" in event["message"] and "grace window" in event["message"]
    with pytest.raises(VeoAPIError, match="task_x") as raised:
        job_from_event(event)
    assert raised.value.retryable is False


def test_watch_without_a_grace_window_believes_not_found_at_once() -> None:
    event = JobWatch("task_x", 5.0, end_time=5000.0, log=RecordingLog(), clock=Clock()).after_poll(
        _not_found()
    )
    assert isinstance(event, dict) and event["status"] == "error" and "task_x" in event["message"]


def test_watch_warns_of_an_unknown_status_once() -> None:
    log = RecordingLog()
    watch = JobWatch("task_x", 5.0, end_time=5000.0, log=log, clock=Clock())
    for progress in (10, 20, 30):
        watch.after_poll(VideoJob(video_id="task_x", status="rendering", progress=progress))
    assert sum(level == "warning" for level, _ in log.lines) == 1


def test_a_long_prompt_is_sent_with_a_warning() -> None:
    assert not build_request(prompt="x" * api.LONG_PROMPT_CHARS).warnings
    [warning] = build_request(prompt="x" * (api.LONG_PROMPT_CHARS + 1)).warnings
    assert f"{api.LONG_PROMPT_CHARS + 1} characters" in warning


def test_the_fingerprint_changes_with_everything_that_makes_the_video() -> None:
    base = build_request(prompt="a fox", model="veo3.1", seconds=8, size="1280x720")
    same = build_request(prompt="a fox", model="veo3.1", seconds="8", size="1280x720")
    assert api.request_fingerprint(base, []) == api.request_fingerprint(same, [])
    changed = [
        build_request(prompt="a fox!", model="veo3.1", seconds=8, size="1280x720"),
        build_request(prompt="a fox", model="veo3.1-fast", seconds=8, size="1280x720"),
        build_request(prompt="a fox", model="veo3.1", seconds=6, size="1280x720"),
        build_request(prompt="a fox", model="veo3.1", seconds=8, size="720x1280"),
    ]
    prints = {api.request_fingerprint(r, []) for r in changed} | {api.request_fingerprint(base, ["ab"])}
    assert api.request_fingerprint(base, []) not in prints and len(prints) == 5


def test_prompt_fields_keep_short_prompts_whole_and_cut_long_ones() -> None:
    short, digest = api.prompt_fields("a fox")
    assert short == "a fox" and len(digest) == 64
    long_prompt = "y" * (api.PROMPT_EXCERPT_CHARS + 50)
    excerpt, long_digest = api.prompt_fields(long_prompt)
    assert len(excerpt) == api.PROMPT_EXCERPT_CHARS and excerpt.endswith("…")
    assert long_digest != digest


@pytest.mark.parametrize(
    ("asked", "reported", "names"),
    [
        ("veo3.1-fast", "veo-3.1-fast-generate-preview", ("veo3.1-fast", "veo-3.1-fast-generate-preview")),
        ("veo3.1-fast", "veo3.1-fast", ("veo3.1-fast", None)),
        ("veo3.1", None, ("veo3.1", None)),  # the gateway's create answer may name none
        (None, "veo-3.1-generate-preview", ("veo-3.1-generate-preview", None)),  # a download knows no ask
    ],
)
def test_a_result_names_the_model_asked_for_and_the_apis_own_apart(
    asked: str | None, reported: str | None, names: tuple[str | None, str | None]
) -> None:
    assert api.model_names(asked, reported) == names
