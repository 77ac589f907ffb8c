"""Issue 17's gateway items, one class at a time: connections and the key, where a ``video_url`` may lead,
the gateway's newer answers (retired models, model-limited keys, its internal task view), unreadable
bodies, and ids shown safely in logs and shell commands."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    JobWatch,
    VeoInputError,
    VeoJobNotFoundError,
    VeoModelAccessError,
    VeoModelUnavailableError,
    VeoPermissionError,
    VeoTransientError,
    VideoJob,
    error_from_response,
)
from airflow_provider_veo.hooks import veo as hook_module
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.operators.veo import _paid_for

from .conftest import BASE_URL, JOB_URL, VIDEO_ID, conn_json, error_json, job_json
from .loopback_api import Answer, LoopbackApi, serving

GOOGLE_404 = json.dumps(
    {
        "error": {
            "code": 404,
            "message": "models/veo-3.0-generate-001 is no longer available",
            "status": "NOT_FOUND",
        }
    }
)
NO_ACCESS = error_json("This token has no access to model  (request id: 2026x)")


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str, /, *args: object) -> None:
        self.lines.append(("info", msg % args))

    def warning(self, msg: str, /, *args: object) -> None:
        self.lines.append(("warning", msg % args))


# --------------------------------------------------------------------------------------------
# Connections and the key
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("https://gw.example/comet", None, 8443, "https://gw.example:8443/comet"),
        ("https://gw.example/comet/v1/", None, 8443, "https://gw.example:8443/comet"),
        ("gw.example/comet", "http", 8080, "http://gw.example:8080/comet"),
        ("https://gw.example:9000/comet", None, 8443, "https://gw.example:9000/comet"),  # the host's own wins
        ("https://[::1]/p", None, 8443, "https://[::1]:8443/p"),
    ],
)
def test_the_port_goes_before_the_path_prefix(
    host: str, schema: str | None, port: int, expected: str
) -> None:
    assert api.base_url_from(host, schema, port) == expected


@pytest.mark.parametrize("host", ["https://user:s3cret-pw@gw.example", "https://s3cret-pw@gw.example/p"])
def test_userinfo_in_the_host_is_refused_naming_the_connection(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(host=host))
    with pytest.raises(VeoInputError) as raised:
        VeoHook()._settings  # noqa: B018 - reading the settings is the test
    message = str(raised.value)
    assert "connection 'veo_default'" in message and "user name or password" in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize("password", ["  sk-abc\n", "\tsk-abc\r\n", "sk-abc "])
def test_a_key_with_surrounding_whitespace_is_stripped(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(password=password))
    assert VeoHook()._settings.auth_headers["Authorization"] == "Bearer sk-abc"


@pytest.mark.parametrize("password", ["sk-a\nbc", "sk-a bc", "sk-a\x00bc", "sk-äbc", "   ", None])
def test_a_key_that_cannot_be_a_header_is_refused_naming_the_connection(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, password: str | None
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(password=password))
    with pytest.raises(VeoInputError) as raised:
        VeoHook().create_video("a cat")
    message = str(raised.value)
    assert "connection 'veo_default'" in message and raised.value.field == "password"
    assert "bc" not in message.replace("because", "")
    assert "may have received" not in message
    assert requests_mock.request_history == []


def test_a_request_that_cannot_be_built_is_never_may_have_been_received(
    hook_with_bad_header: VeoHook, requests_mock: Any
) -> None:
    with pytest.raises(VeoInputError) as raised:
        hook_with_bad_header.create_video("a cat")
    assert "nothing was sent" in str(raised.value) and "may have received" not in str(raised.value)
    assert "sk-" not in str(raised.value)
    assert requests_mock.request_history == []


@pytest.fixture
def hook_with_bad_header(monkeypatch: pytest.MonkeyPatch) -> VeoHook:
    """A hook whose settings slipped a newline into the header (what a stripped key now prevents)."""
    hook = VeoHook()
    settings = hook._settings
    monkeypatch.setattr(
        type(settings), "auth_headers", property(lambda self: {"Authorization": "Bearer sk-x\nInjected: 1"})
    )
    return hook


# --------------------------------------------------------------------------------------------
# Where video_url may lead: the key goes to this job's /content only
# --------------------------------------------------------------------------------------------


def test_the_scheme_is_part_of_the_apis_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pins the scheme comparison: http://same-host under an https base must not get the key."""
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(host="https://api.example"))
    settings = VeoHook()._settings
    plain = f"http://api.example/v1/videos/{VIDEO_ID}/content"
    source = settings.video_source(VIDEO_ID, plain)
    assert source.url == plain  # fetched as any foreign URL: without the key
    same = settings.video_source(VIDEO_ID, f"https://api.example/v1/videos/{VIDEO_ID}/content")
    assert same.url is None and same.note is None


def test_a_foreign_video_url_is_fetched_without_the_key(requests_mock: Any, tmp_path: Path) -> None:
    from .conftest import mp4_bytes

    url = "http://api.test.evil/v1/videos/x/content"
    requests_mock.get(url, content=mp4_bytes(2048))
    job = VideoJob.from_json(job_json(status="completed", video_url=url))
    VeoHook().download_video(VIDEO_ID, tmp_path / "v.mp4", job=job)
    [fetch] = requests_mock.request_history
    assert "Authorization" not in fetch.headers


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("169.254.0.1", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("fd00:ec2::254", True),
        ("::ffff:169.254.169.254", True),
        ("100.100.100.200", True),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
        ("cdn.example", False),
    ],
)
def test_metadata_addresses(address: str, refused: bool) -> None:
    assert api.metadata_address(address) is refused


def test_a_download_never_fetches_a_metadata_url(requests_mock: Any, tmp_path: Path) -> None:
    from .conftest import mp4_bytes

    requests_mock.get(f"{JOB_URL}/content", content=mp4_bytes(2048))
    job = VideoJob.from_json(
        job_json(status="completed", video_url="http://169.254.169.254/latest/meta-data/")
    )
    VeoHook().download_video(VIDEO_ID, tmp_path / "v.mp4", job=job)
    assert [r.url for r in requests_mock.request_history] == [f"{JOB_URL}/content"]


# --------------------------------------------------------------------------------------------
# The gateway's answers since August 2026
# --------------------------------------------------------------------------------------------


def test_a_retired_model_404_is_its_own_error() -> None:
    body = json.dumps({"code": "fail_to_fetch_task", "message": GOOGLE_404, "data": None})
    error = error_from_response(404, body, request_id="r-1")
    assert isinstance(error, VeoModelUnavailableError) and not error.retryable
    assert "retired" in str(error) and "no longer available" in str(error)


def test_other_404s_are_still_unknown_jobs() -> None:
    body = json.dumps({"code": "fail_to_fetch_task", "message": "task not found", "data": None})
    assert type(error_from_response(404, body)) is VeoJobNotFoundError


def test_model_not_found_is_transient_on_every_attempt_and_final_only_for_a_create() -> None:
    error = error_from_response(503, json.dumps(error_json("No available channel", "model_not_found")))
    assert isinstance(error, VeoTransientError) and not error.job_may_exist
    policy = api.RetryPolicy(max_attempts=3)
    assert policy.delay_before_retry(1, error, method="POST") is not None
    assert isinstance(policy.final_error(error, method="POST"), VeoModelUnavailableError)
    assert policy.final_error(error, method="GET") is error  # a poll outage, not a verdict on the model


def test_no_access_to_model_is_its_own_permission_error() -> None:
    error = error_from_response(403, json.dumps(NO_ACCESS))
    assert isinstance(error, VeoModelAccessError) and isinstance(error, VeoPermissionError)
    assert "limited to certain models" in str(error)


def test_request_blocked_says_it_is_on_cometapis_side() -> None:
    body = {"error": {"message": "request blocked: private address", "type": "server_error"}}
    error = error_from_response(403, json.dumps(body), request_id="r-2")
    assert type(error) is VeoPermissionError and not error.retryable
    assert "on CometAPI's side" in str(error) and "r-2" in str(error)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (VeoModelAccessError("403 no access", status_code=403), "refuses this key the status of video"),
        (VeoJobNotFoundError("400 task_not_exist", status_code=400), "does not know video"),
    ],
)
def test_watch_takes_a_refusal_as_not_visible_within_the_grace_window(outcome: Any, expected: str) -> None:
    now = [1000.0]
    log = Log()
    watch = JobWatch(VIDEO_ID, 5, 2000, log, clock=lambda: now[0], visible_by=1060)
    assert isinstance(watch.after_poll(outcome), float)
    assert isinstance(watch.after_poll(outcome), float)
    assert [level for level, line in log.lines if "not visible yet" in line] == ["info"]
    now[0] = 1060
    event = watch.after_poll(outcome)
    assert isinstance(event, dict) and event["status"] == "error"
    assert (
        expected in event["message"] and VIDEO_ID in event["message"] and "grace window" in event["message"]
    )


def test_watch_without_a_create_believes_a_refusal_at_once() -> None:
    watch = JobWatch(VIDEO_ID, 5, 2000, Log(), clock=lambda: 1000.0, visible_by=None)
    event = watch.after_poll(VeoModelAccessError("no access", status_code=403))
    assert isinstance(event, dict) and event["status"] == "error"


def test_test_connection_accepts_a_model_limited_key(requests_mock: Any) -> None:
    requests_mock.get(f"{BASE_URL}/v1/videos/airflow-connection-test", status_code=403, json=NO_ACCESS)
    ok, message = VeoHook().test_connection()
    assert ok and "key was accepted" in message and "limited to certain models" in message


def test_test_connection_still_refuses_other_403s(requests_mock: Any) -> None:
    requests_mock.get(
        f"{BASE_URL}/v1/videos/airflow-connection-test", status_code=403, json=error_json("user is banned")
    )
    ok, message = VeoHook().test_connection()
    assert not ok and "banned" in message


def test_the_internal_task_view_is_read() -> None:
    failed = VideoJob.from_json(
        {
            "task_id": "task_1",
            "platform": "gemini",
            "status": "FAILURE",
            "progress": "100%",
            "fail_reason": "the prompt was flagged",
            "created_at": 1764905797,
            "finished_at": 1764905900,
        }
    )
    assert (failed.video_id, failed.state, failed.progress) == ("task_1", api.JobState.FAILED, 100)
    assert failed.completed_at == 1764905900
    assert str(failed.failure()).endswith("ended with status 'FAILURE': the prompt was flagged")
    running = VideoJob.from_json(
        {"task_id": "task_1", "status": "IN_PROGRESS", "progress": "30%", "fail_reason": ""}
    )
    assert (running.state, running.progress, running.error_message) == (api.JobState.RUNNING, 30, None)


def test_an_error_object_wins_over_fail_reason() -> None:
    job = VideoJob.from_json(
        {"id": "t", "status": "failed", "error": {"message": "from error"}, "fail_reason": "from fail_reason"}
    )
    assert job.error_message == "from error"


# --------------------------------------------------------------------------------------------
# Bodies that cannot be parsed
# --------------------------------------------------------------------------------------------


def test_an_error_body_nested_deeper_than_python_parses_is_still_an_error() -> None:
    error = error_from_response(500, b"[" * 100_000)
    assert isinstance(error, VeoTransientError) and error.job_may_exist  # not the API's JSON


@pytest.mark.parametrize(
    "body", [b"[" * 100_000, b'{"id": "task_1", "status": "in_pro', b"\xff\xfe\xfd", b"{}"], ids=str
)
def test_the_async_client_retries_an_unreadable_body(body: bytes) -> None:
    answers = [Answer(200, text=body.decode("latin-1")), Answer(200, json=job_json(status="queued"))]
    with serving(LoopbackApi(*answers)) as api_server:
        warnings: list[str] = []

        async def read() -> VideoJob:
            hook = VeoHook()
            hook._warn = lambda msg, *args: warnings.append(msg % args)  # type: ignore[method-assign]
            async with hook.async_client() as client:
                return await client.get_video(VIDEO_ID)

        assert asyncio.run(read()).status == "queued"
    assert api_server.call_count == 2
    assert len(warnings) == 1 and "not a readable job" in warnings[0]


# --------------------------------------------------------------------------------------------
# Ids shown safely
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task_abc", "task_abc"),
        ("a\r\nERROR b", "a\\r\\nERROR b"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("vidéo-視頻 ok", "vidéo-視頻 ok"),
        ("a\u2028b", "a\\u2028b"),
    ],
)
def test_shown_escapes_control_characters_only(text: str, expected: str) -> None:
    assert api.shown(text) == expected


def test_watch_logs_ids_on_one_line() -> None:
    log = Log()
    watch = JobWatch("t\r\nFORGED", 5, 2000, log, clock=lambda: 1000.0)
    watch.after_poll(VideoJob("t\r\nFORGED", "in_progress"))
    assert log.lines and all("\n" not in line and "\r" not in line for _, line in log.lines)


@pytest.mark.parametrize(
    "video_id", ["task_$(touch PWNED)", "task_`touch PWNED`", "t';touch PWNED;'", 't"&& touch PWNED', "a b|c"]
)
def test_the_paid_for_command_runs_nothing_the_id_chose(video_id: str, tmp_path: Path) -> None:
    message = _paid_for(video_id, f"{tmp_path}/out dir/", "veo $(touch PWNED)")
    command = message.split("or this shell command: ", 1)[1]
    assert shlex.split(command)[4:] == [video_id, f"{tmp_path}/out dir/", "--conn-id", "veo $(touch PWNED)"]
    subprocess.run(["bash", "-c", f"python() {{ :; }}; {command}"], check=True, cwd=tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_the_hooks_retry_log_shows_the_path_escaped(
    requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hook_module, "time", SimpleNamespace(sleep=lambda seconds: None))
    video_id = "t\nFORGED"
    url = f"{BASE_URL}{api.video_path(video_id)}"
    requests_mock.get(
        url, [{"status_code": 502, "text": "bad"}, {"json": job_json(video_id, status="queued")}]
    )
    hook = VeoHook()
    lines: list[str] = []
    monkeypatch.setattr(
        type(hook), "log", property(lambda self: SimpleNamespace(warning=lambda m, *a: lines.append(m % a)))
    )
    hook.get_video(video_id)
    assert lines and all("\n" not in line for line in lines)


def test_a_refused_key_names_the_connection(requests_mock: Any) -> None:
    requests_mock.get(JOB_URL, status_code=401, json=error_json("Invalid token (request id: r-3)"))
    with pytest.raises(api.VeoAuthenticationError) as raised:
        VeoHook().get_video(VIDEO_ID)
    assert str(raised.value).endswith("(connection 'veo_default')")


def test_a_refused_key_names_the_connection_in_the_event_loop() -> None:
    with serving(LoopbackApi(Answer(401, json=error_json("Invalid token (request id: r-4)")))):

        async def read() -> VideoJob:
            async with VeoHook().async_client() as client:
                return await client.get_video(VIDEO_ID)

        with pytest.raises(api.VeoAuthenticationError, match=r"\(connection 'veo_default'\)$"):
            asyncio.run(read())


def test_a_body_that_is_not_utf8_never_passes_for_a_job(
    requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hook_module, "time", SimpleNamespace(sleep=lambda seconds: None))
    garbled = b'{"id": "task_\xff\xfe", "status": "completed"}'  # read leniently: a job with another id
    requests_mock.get(JOB_URL, [{"content": garbled}, {"json": job_json(status="queued")}])
    assert VeoHook().get_video(VIDEO_ID).video_id == VIDEO_ID
    assert len(requests_mock.request_history) == 2
