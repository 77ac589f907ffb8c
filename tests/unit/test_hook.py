"""VeoHook over HTTP: requests-mock for the sync client, the API on a loopback port for the async one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    VeoAuthenticationError,
    VeoBadRequestError,
    VeoDownloadError,
    VeoInputError,
    VeoInsufficientCreditError,
    VeoPermissionError,
    VeoSubmissionUncertainError,
    VeoTransientError,
    VideoJob,
)
from airflow_provider_veo.hooks import download
from airflow_provider_veo.hooks import veo as hook_module
from airflow_provider_veo.hooks.veo import VeoHook

from .conftest import (
    API_KEY,
    BASE_URL,
    JOB_URL,
    JPEG,
    PNG,
    VIDEO_ID,
    WEBP,
    conn_json,
    error_json,
    job_json,
    mp4_bytes,
    multipart_parts,
    refused_port,
)
from .loopback_api import Answer, LoopbackApi, serving

CREATE_URL = f"{BASE_URL}/v1/videos"
CONTENT_URL = f"{JOB_URL}/content"
CDN_URL = "https://cdn.test/files/video.mp4?sig=abc"
MIB = 1024 * 1024


@pytest.fixture
def hook() -> VeoHook:
    return VeoHook()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The hook's retry waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(hook_module, "time", SimpleNamespace(sleep=recorded.append))
    return recorded


def _posts(requests_mock: Any) -> list[Any]:
    return [r for r in requests_mock.request_history if r.method == "POST"]


def _gets(requests_mock: Any, url: str) -> list[Any]:
    return [r for r in requests_mock.request_history if r.method == "GET" and r.url == url]


def _completed(video_url: str | None = CDN_URL, **fields: Any) -> dict[str, Any]:
    return job_json(status="completed", progress=100, video_url=video_url, completed_at=1764905900, **fields)


# --------------------------------------------------------------------------------------------
# Connection and settings
# --------------------------------------------------------------------------------------------


def test_sends_the_api_key(hook: VeoHook, requests_mock: Any) -> None:
    requests_mock.get(JOB_URL, json=job_json(status="in_progress", progress=40))
    job = hook.get_video(VIDEO_ID)
    assert job.status == "in_progress" and job.progress == 40
    [request] = requests_mock.request_history
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.url == JOB_URL


def test_base_url_with_v1_suffix(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(host="http://api.test/v1/"))
    requests_mock.get(JOB_URL, json=job_json())
    assert VeoHook().get_video(VIDEO_ID).video_id == VIDEO_ID


def test_other_connection_id(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_VEO", conn_json(host="http://other.test", password="sk-other"))
    requests_mock.get(f"http://other.test/v1/videos/{VIDEO_ID}", json=job_json())
    VeoHook(veo_conn_id="other_veo").get_video(VIDEO_ID)
    assert requests_mock.last_request.headers["Authorization"] == "Bearer sk-other"


def test_connection_without_key_refused(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(password=None))
    with pytest.raises(VeoInputError) as info:
        VeoHook().get_video(VIDEO_ID)
    assert info.value.field == "password"
    assert not requests_mock.request_history


def test_extra_options_left_empty_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VEO_DEFAULT", conn_json(timeout=None, create_timeout="", max_retries=None)
    )
    settings = VeoHook()._settings
    assert (settings.timeout, settings.create_timeout) == (
        api.DEFAULT_REQUEST_TIMEOUT,
        api.DEFAULT_CREATE_TIMEOUT,
    )
    assert settings.retry.max_attempts == api.RetryPolicy.max_attempts


def test_bad_extra_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(timeout="soon"))
    with pytest.raises(VeoInputError) as info:
        VeoHook().get_video(VIDEO_ID)
    assert info.value.field == "extra"


def test_ui_field_behaviour() -> None:
    behaviour = VeoHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "login", "extra"}
    assert "get_connection_form_widgets" in VeoHook.__dict__  # Airflow 3.1's form; calling it needs wtforms
    assert (VeoHook.conn_type, VeoHook.default_conn_name, VeoHook.conn_name_attr) == (
        "veo",
        "veo_default",
        "veo_conn_id",
    )


def test_test_connection_true_on_404(hook: VeoHook, requests_mock: Any) -> None:
    probe = f"{CREATE_URL}/airflow-connection-test"
    requests_mock.get(probe, status_code=404, json=error_json("task not found (request id: 1)"))
    ok, message = hook.test_connection()
    assert ok is True, message
    assert "accepted" in message
    assert [r.url for r in requests_mock.request_history] == [probe]
    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_test_connection_false_on_401(hook: VeoHook, requests_mock: Any) -> None:
    requests_mock.get(f"{CREATE_URL}/airflow-connection-test", status_code=401, json=error_json("bad key"))
    ok, message = hook.test_connection()
    assert ok is False
    assert "bad key" in message and "API key" in message
    assert requests_mock.call_count == 1


def test_test_connection_false_when_unreachable(monkeypatch: pytest.MonkeyPatch, sleeps: list) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_VEO_DEFAULT", conn_json(host=f"http://127.0.0.1:{refused_port()}", max_retries=0)
    )
    ok, message = VeoHook().test_connection()
    assert ok is False
    assert "127.0.0.1" in message


# --------------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------------


def test_create_text_only_is_multipart(hook: VeoHook, requests_mock: Any) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    job = hook.create_video("a cat surfing", model="veo3.1", seconds="8", size="1920x1080")
    assert job.video_id == VIDEO_ID
    [request] = requests_mock.request_history
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    parts = multipart_parts(content_type, request.body)
    assert [(p.name, p.content.decode(), p.filename) for p in parts] == [
        ("model", "veo3.1", None),
        ("prompt", "a cat surfing", None),
        ("seconds", "8", None),
        ("size", "1920x1080", None),
    ]


def test_create_minimal_fields(hook: VeoHook, requests_mock: Any) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    hook.create_video("a dog")
    request = requests_mock.last_request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    parts = multipart_parts(request.headers["Content-Type"], request.body)
    assert [(p.name, p.content.decode()) for p in parts] == [
        ("model", "veo3.1-fast"),
        ("prompt", "a dog"),
        ("seconds", "4"),
    ]


def test_create_fixed_seconds_model_omits_seconds(hook: VeoHook, requests_mock: Any, logs: Any) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    hook.create_video("a dog", model="veo3-pro", seconds=8, size="9x16")
    request = requests_mock.last_request
    names = [p.name for p in multipart_parts(request.headers["Content-Type"], request.body)]
    assert names == ["model", "prompt", "size"]
    assert any("seconds` is not sent" in line for line in logs.lines("warning"))


def test_create_references_from_path_and_file_uri(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    first = tmp_path / "first.png"
    first.write_bytes(PNG)
    last = tmp_path / "last frame.jpg"
    last.write_bytes(JPEG)
    requests_mock.post(CREATE_URL, json=job_json())
    hook.create_video("a cat", model="veo3.1", input_reference=[str(first), f"file://{last}"])
    [request] = _posts(requests_mock)
    parts = multipart_parts(request.headers["Content-Type"], request.body)
    assert [p.name for p in parts] == ["model", "prompt", "seconds", "input_reference", "input_reference"]
    assert [(p.filename, p.content_type, p.content) for p in parts[3:]] == [
        ("first.png", "image/png", PNG),
        ("last frame.jpg", "image/jpeg", JPEG),
    ]


def test_create_reference_from_url_without_credentials(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    image_url = "https://images.test/frames/first.webp?token=public"
    requests_mock.get(image_url, content=WEBP, headers={"Content-Type": "application/octet-stream"})
    last = tmp_path / "last.png"
    last.write_bytes(PNG)
    requests_mock.post(CREATE_URL, json=job_json())
    hook.create_video("a cat", model="veo3.1", input_reference=[image_url, last])
    [fetch] = _gets(requests_mock, image_url)
    assert "Authorization" not in fetch.headers
    assert API_KEY not in json.dumps(dict(fetch.headers))
    [request] = _posts(requests_mock)
    assert requests_mock.request_history.index(fetch) < requests_mock.request_history.index(request)
    parts = multipart_parts(request.headers["Content-Type"], request.body)
    assert [(p.name, p.filename, p.content_type, p.content) for p in parts[3:]] == [
        ("input_reference", "first.webp", "image/webp", WEBP),
        ("input_reference", "last.png", "image/png", PNG),
    ]


def test_a_reference_url_is_read_no_further_than_the_size_cap(hook: VeoHook, requests_mock: Any) -> None:
    # A server sending more than the cap is cut off after cap + 1 bytes, then refused before any POST.
    image_url = "https://images.test/huge.png"
    body = PNG + bytes(3 * api.MAX_REFERENCE_BYTES)
    requests_mock.get(image_url, content=body)
    read: list[int] = []
    real_read = hook_module.VeoHook._read_reference

    def spy(self: VeoHook, position: int, location: str) -> bytes:
        content = real_read(self, position, location)
        read.append(len(content))
        return content

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hook_module.VeoHook, "_read_reference", spy)
        with pytest.raises(VeoInputError, match="the limit is 20 MiB"):
            hook.create_video("a cat", input_reference=image_url)
    assert read == [api.MAX_REFERENCE_BYTES + 1]
    assert not _posts(requests_mock)


def test_create_missing_reference_fails_before_post(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    missing = tmp_path / "nope.png"
    with pytest.raises(VeoInputError) as info:
        hook.create_video("a cat", input_reference=str(missing))
    assert info.value.field == "input_reference"
    assert str(missing) in str(info.value)
    assert not _posts(requests_mock)


def test_create_non_image_fails_before_post(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    text = tmp_path / "frame.png"
    text.write_text("not really a png")
    with pytest.raises(VeoInputError, match="not a PNG, JPEG or WebP"):
        hook.create_video("a cat", input_reference=str(text))
    assert not _posts(requests_mock)


def test_create_second_bad_reference_fails_before_post(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    good = tmp_path / "a.png"
    good.write_bytes(PNG)
    bad = tmp_path / "b.gif"
    bad.write_bytes(b"GIF89a" + bytes(32))
    with pytest.raises(VeoInputError, match="item 1"):
        hook.create_video("a cat", model="veo3.1", input_reference=[str(good), str(bad)])
    assert not _posts(requests_mock)


def test_create_oversized_reference_fails_before_post(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    big = tmp_path / "big.png"
    with big.open("wb") as out:
        out.write(PNG)
        out.truncate(api.MAX_REFERENCE_BYTES + 1)
    with pytest.raises(VeoInputError, match="limit is 20 MiB"):
        hook.create_video("a cat", input_reference=str(big))
    assert not _posts(requests_mock)


def test_create_reference_url_errors_fail_before_post(hook: VeoHook, requests_mock: Any) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    requests_mock.get("https://images.test/gone.png", status_code=404)
    with pytest.raises(VeoInputError, match="HTTP 404"):
        hook.create_video("a cat", input_reference="https://images.test/gone.png")
    requests_mock.get("https://images.test/down.png", exc=requests.ConnectionError("refused"))
    with pytest.raises(VeoInputError, match="cannot be read"):
        hook.create_video("a cat", input_reference="https://images.test/down.png")
    assert not _posts(requests_mock)


def test_create_invalid_input_sends_nothing(hook: VeoHook, requests_mock: Any) -> None:
    with pytest.raises(VeoInputError):
        hook.create_video("a cat", seconds=5)
    assert not requests_mock.request_history


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 524])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(error_json("upstream died (request id: r-9)"), id="envelope"),
        pytest.param({"code": "do_request_failed", "message": "upstream died", "data": None}, id="flat"),
    ],
)
def test_post_retried_after_a_json_server_error(
    hook: VeoHook, requests_mock: Any, sleeps: list[float], status: int, body: dict[str, Any]
) -> None:
    # The gateway stores a task only after success and refunds on any error: a JSON error created nothing.
    requests_mock.post(
        CREATE_URL, [{"status_code": status, "json": body}, {"json": job_json(status="queued")}]
    )
    assert hook.create_video("a cat").video_id == VIDEO_ID
    assert len(_posts(requests_mock)) == 2
    assert len(sleeps) == 1


def test_post_json_server_errors_give_up_after_max_retries(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, sleeps: list[float]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(max_retries=2))
    requests_mock.post(CREATE_URL, status_code=500, json=error_json("upstream EOF", "do_request_failed"))
    with pytest.raises(VeoTransientError, match="upstream EOF") as info:
        VeoHook().create_video("a cat")
    assert not isinstance(info.value, VeoSubmissionUncertainError)
    assert len(_posts(requests_mock)) == 3
    assert len(sleeps) == 2


def test_post_model_not_found_through_every_attempt_is_an_unavailable_model(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, sleeps: list[float]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(max_retries=2))
    requests_mock.post(CREATE_URL, status_code=503, json=error_json("no channel", "model_not_found"))
    with pytest.raises(api.VeoModelUnavailableError) as info:
        VeoHook().create_video("a cat", model="veo3")
    message = str(info.value)
    assert info.value.retryable is False
    assert "Model 'veo3' is unavailable" in message and "Google retired Veo 3.0" in message
    assert "No job was created" in message
    assert len(_posts(requests_mock)) == 3


def test_post_of_a_retired_model_is_sent_once_and_says_so(hook: VeoHook, requests_mock: Any) -> None:
    google = {
        "error": {
            "code": 404,
            "message": "models/veo-3.0-generate-001 is no longer available",
            "status": "NOT_FOUND",
        }
    }
    body = {"code": "fail_to_fetch_task", "message": json.dumps(google), "data": None}
    requests_mock.post(CREATE_URL, status_code=404, json=body)
    with pytest.raises(api.VeoModelUnavailableError) as info:
        hook.create_video("a cat", model="veo3.1")
    message = str(info.value)
    assert (
        "Model 'veo3.1' is unavailable" in message
        and "retired" in message
        and "no longer available" in message
    )
    assert len(_posts(requests_mock)) == 1


@pytest.mark.parametrize("status", [502, 504, 524])
@pytest.mark.parametrize(
    "body", [b"", b"<html><body>502 Bad Gateway</body></html>", b'{"detail": "proxy"}'], ids=str
)
def test_post_not_retried_after_a_proxy_answer(
    hook: VeoHook, requests_mock: Any, sleeps: list[float], status: int, body: bytes
) -> None:
    requests_mock.post(CREATE_URL, status_code=status, content=body, headers={"X-Oneapi-Request-Id": "r-9"})
    with pytest.raises(VeoSubmissionUncertainError) as info:
        hook.create_video("a cat on a skateboard")
    assert len(_posts(requests_mock)) == 1
    assert not sleeps
    message = str(info.value)
    assert "may have received" in message
    assert "second job" in message
    assert "(request id: r-9)" in message
    assert f"HTTP {status}" in message
    assert "'a cat on a skateboard'" in message and "veo3.1-fast video created at about" in message


def test_post_uses_the_create_timeout(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(create_timeout=240, timeout=7))
    requests_mock.post(CREATE_URL, json=job_json())
    requests_mock.get(JOB_URL, json=job_json())
    hook = VeoHook()
    hook.create_video("a cat")
    hook.get_video(VIDEO_ID)
    assert [r.timeout for r in requests_mock.request_history] == [(10.0, 240.0), (10.0, 7.0)]


def test_create_timeout_defaults_to_at_least_180_seconds(hook: VeoHook, requests_mock: Any) -> None:
    requests_mock.post(CREATE_URL, json=job_json())
    hook.create_video("a cat")
    assert requests_mock.last_request.timeout[1] >= 180


def test_post_not_retried_after_read_timeout(hook: VeoHook, requests_mock: Any, sleeps: list[float]) -> None:
    requests_mock.post(CREATE_URL, exc=requests.ReadTimeout("read timed out"))
    with pytest.raises(VeoSubmissionUncertainError, match="not sent again"):
        hook.create_video("a cat")
    assert len(_posts(requests_mock)) == 1
    assert not sleeps


def test_post_not_retried_after_connection_reset(
    hook: VeoHook, requests_mock: Any, sleeps: list[float]
) -> None:
    requests_mock.post(CREATE_URL, exc=requests.ConnectionError("Connection aborted: reset by peer"))
    with pytest.raises(VeoSubmissionUncertainError):
        hook.create_video("a cat")
    assert len(_posts(requests_mock)) == 1


def test_post_retried_after_429(hook: VeoHook, requests_mock: Any, sleeps: list[float]) -> None:
    requests_mock.post(
        CREATE_URL,
        [
            {"status_code": 429, "json": error_json("saturated"), "headers": {"Retry-After": "1"}},
            {"json": job_json(status="queued")},
        ],
    )
    assert hook.create_video("a cat").video_id == VIDEO_ID
    posts = _posts(requests_mock)
    assert len(posts) == 2
    first, second = (multipart_parts(r.headers["Content-Type"], r.body) for r in posts)
    assert first == second
    assert [p.name for p in second] == ["model", "prompt", "seconds"]
    assert len(sleeps) == 1 and sleeps[0] >= 1.0


def test_post_retried_after_connect_timeout(hook: VeoHook, requests_mock: Any, sleeps: list[float]) -> None:
    requests_mock.post(
        CREATE_URL, [{"exc": requests.ConnectTimeout("connect timed out")}, {"json": job_json()}]
    )
    assert hook.create_video("a cat").video_id == VIDEO_ID
    assert len(_posts(requests_mock)) == 2


def test_post_retried_after_refused_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sleeps: list[float]
) -> None:
    port = refused_port()
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(host=f"http://127.0.0.1:{port}", max_retries=2))
    hook = VeoHook()
    attempts: list[str] = []
    real_request = hook._session.request

    def counting_request(method: str, url: str, **kwargs: Any) -> requests.Response:
        attempts.append(f"{method} {url}")
        return real_request(method, url, **kwargs)

    monkeypatch.setattr(hook._session, "request", counting_request)
    with pytest.raises(VeoTransientError) as info:
        hook.create_video("a cat")
    assert not isinstance(info.value, VeoSubmissionUncertainError)
    assert info.value.job_may_exist is False
    assert attempts == [f"POST http://127.0.0.1:{port}/v1/videos"] * 3
    assert len(sleeps) == 2
    assert f"127.0.0.1:{port}" in str(info.value)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_4xx_fails_at_once_with_api_message(
    hook: VeoHook, requests_mock: Any, sleeps: list[float], method: str
) -> None:
    message = "prompt violates the content policy (request id: 2025120512345)"
    requests_mock.register_uri(
        method,
        JOB_URL if method == "GET" else CREATE_URL,
        status_code=400,
        json=error_json(message, "invalid_request"),
    )
    with pytest.raises(VeoBadRequestError) as info:
        hook.get_video(VIDEO_ID) if method == "GET" else hook.create_video("a cat")
    assert requests_mock.call_count == 1
    assert not sleeps
    assert message in str(info.value)
    assert "invalid_request" in str(info.value)


def test_500_invalid_request_not_retried(hook: VeoHook, requests_mock: Any, sleeps: list[float]) -> None:
    requests_mock.get(JOB_URL, status_code=500, json=error_json("bad id", "invalid_request"))
    with pytest.raises(VeoBadRequestError):
        hook.get_video(VIDEO_ID)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (401, "Invalid token", VeoAuthenticationError),
        (402, "Payment required", VeoInsufficientCreditError),
        (403, "user quota is not enough", VeoInsufficientCreditError),
        (403, "this token may not use veo3.1", VeoPermissionError),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_typed_errors(
    hook: VeoHook, requests_mock: Any, sleeps: list[float], status: int, message: str, kind: type, method: str
) -> None:
    requests_mock.get(JOB_URL, status_code=status, json=error_json(message))
    requests_mock.post(CREATE_URL, status_code=status, json=error_json(message))
    with pytest.raises(kind, match=message):
        hook.get_video(VIDEO_ID) if method == "GET" else hook.create_video("a cat")
    assert requests_mock.call_count == 1
    assert not sleeps


@pytest.mark.parametrize(
    "body",
    [b"<html>hello</html>", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{not utf-8", b"[]", b'{"no": "id"}'],
    ids=["html", "nested-deeper-than-python-parses", "not-utf-8", "a-list", "no-id"],
)
def test_an_unreadable_job_body_is_retried_as_transient(
    hook: VeoHook, requests_mock: Any, sleeps: list[float], body: bytes
) -> None:
    requests_mock.get(JOB_URL, [{"content": body}, {"content": body}, {"json": job_json(status="queued")}])
    assert hook.get_video(VIDEO_ID).status == "queued"
    assert len(_gets(requests_mock, JOB_URL)) == 3 and len(sleeps) == 2
    requests_mock.get(JOB_URL, content=body)
    with pytest.raises(VeoTransientError, match="not a readable job") as raised:
        hook.get_video(VIDEO_ID)
    assert len(str(raised.value)) < 600


def test_an_unreadable_create_answer_is_never_resent(
    hook: VeoHook, requests_mock: Any, sleeps: list[float]
) -> None:
    # A success status with a garbled body: the job was probably made, so the POST is not sent again.
    requests_mock.post(CREATE_URL, content=b"[" * 100_000)
    with pytest.raises(VeoSubmissionUncertainError, match="may have received"):
        hook.create_video("a cat")
    assert len(_posts(requests_mock)) == 1 and not sleeps


# --------------------------------------------------------------------------------------------
# The key never leaks
# --------------------------------------------------------------------------------------------


def _echo(request: Any, context: Any) -> dict[str, Any]:
    """A server that puts the key it was sent into its error message."""
    return error_json(f"token {request.headers['Authorization']} rejected (request id: e-1)")


def _echo_text(request: Any, context: Any) -> str:
    """A proxy page that echoes the key it was sent."""
    return f"<html>Bad gateway for {request.headers['Authorization']}</html>"


def test_key_never_in_post_errors_or_logs(
    hook: VeoHook, requests_mock: Any, sleeps: list[float], logs: Any
) -> None:
    requests_mock.post(
        CREATE_URL,
        [
            {"status_code": 429, "json": _echo},
            {"status_code": 502, "json": _echo},
            {"status_code": 502, "text": _echo_text},
        ],
    )
    with pytest.raises(VeoSubmissionUncertainError) as info:
        hook.create_video("a cat")
    assert len(_posts(requests_mock)) == 3
    assert "Bad gateway for Bearer ***" in str(info.value)
    assert API_KEY not in str(info.value)
    assert logs.lines("warning")
    assert API_KEY not in logs.text


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


@pytest.fixture
def chunk_sizes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int | None]]:
    """The size of every read of a downloaded body, by URL."""
    sizes: dict[str, list[int | None]] = {}
    real = download._body_chunks

    def spy(response: requests.Response) -> Any:
        reads = sizes.setdefault(response.url, [])
        real_read = response.raw.read

        def read(amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
            reads.append(amt)
            return real_read(amt, *args, **kwargs)

        response.raw.read = read
        return real(response)

    monkeypatch.setattr(download, "_body_chunks", spy)
    return sizes


def _mp4_headers(content: bytes) -> dict[str, str]:
    return {"Content-Length": str(len(content)), "Content-Type": "video/mp4"}


def test_download_from_video_url(
    hook: VeoHook, requests_mock: Any, tmp_path: Path, chunk_sizes: dict[str, list[int | None]]
) -> None:
    content = mp4_bytes(int(2.5 * MIB))
    requests_mock.get(JOB_URL, json=_completed(model="veo3.1", seconds="8", size="1920x1080"))
    requests_mock.get(CDN_URL, content=content, headers=_mp4_headers(content))
    destination = tmp_path / "clip.mp4"
    result = hook.download_video(VIDEO_ID, str(destination))
    assert destination.read_bytes() == content
    assert result == {
        "video_id": VIDEO_ID,
        "uri": str(destination.resolve()),
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content_type": "video/mp4",
        "model": "veo3.1",
        "upstream_model": None,
        "seconds": "8",
        "size": "1920x1080",
        "duration_seconds": None,
        "width": None,
        "height": None,
        "asset_uri": destination.resolve().as_uri(),
        "prompt": None,  # a download alone knows only the video id
        "prompt_sha256": None,
        "input_reference": [],
        "usage": None,
    }
    [job_read] = _gets(requests_mock, JOB_URL)
    assert job_read.headers["Authorization"] == f"Bearer {API_KEY}"
    [fetch] = _gets(requests_mock, CDN_URL)
    assert "Authorization" not in fetch.headers
    assert fetch.stream is True
    assert not _gets(requests_mock, CONTENT_URL)
    [download_chunk_size] = set(chunk_sizes[CDN_URL])
    assert download_chunk_size is not None and download_chunk_size >= MIB
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_download_uses_content_endpoint_with_key(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    content = mp4_bytes(4096)
    requests_mock.get(CONTENT_URL, content=content, headers={"Content-Type": "video/mp4; codecs=avc1"})
    job = VideoJob.from_json(_completed(video_url=None))
    result = hook.download_video(VIDEO_ID, tmp_path / "c.mp4", job=job)
    [fetch] = requests_mock.request_history
    assert fetch.url == CONTENT_URL
    assert fetch.headers["Authorization"] == f"Bearer {API_KEY}"
    assert result["content_type"] == "video/mp4"
    assert result["sha256"] == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "c.mp4").read_bytes() == content


def test_download_to_folder_uses_safe_id(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    content = mp4_bytes(1000)
    requests_mock.get(CDN_URL, content=content, headers=_mp4_headers(content))
    folder = tmp_path / "videos"
    result = hook.download_video(VIDEO_ID, f"{folder}/", job=VideoJob.from_json(_completed()))
    expected = folder / api.video_filename(VIDEO_ID)
    assert result["uri"] == str(expected.resolve())
    assert expected.read_bytes() == content
    assert ":" not in expected.name
    assert os.listdir(folder) == [expected.name]


def test_download_to_file_uri(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    content = mp4_bytes(1000)
    requests_mock.get(CDN_URL, content=content, headers=_mp4_headers(content))
    result = hook.download_video(VIDEO_ID, f"file://{tmp_path}/out.mp4", job=VideoJob.from_json(_completed()))
    assert (tmp_path / "out.mp4").read_bytes() == content
    assert result["uri"] == str((tmp_path / "out.mp4").resolve())
    assert result["bytes"] == 1000


def test_download_to_object_store(hook: VeoHook, requests_mock: Any, memory_bucket: str) -> None:
    from airflow.sdk import ObjectStoragePath

    content = mp4_bytes(3000)
    requests_mock.get(CDN_URL, content=content, headers=_mp4_headers(content))
    result = hook.download_video(
        VIDEO_ID, f"memory://{memory_bucket}/videos/", job=VideoJob.from_json(_completed())
    )
    written = ObjectStoragePath(f"memory://{memory_bucket}/videos/{api.video_filename(VIDEO_ID)}")
    assert written.read_bytes() == content
    assert result["uri"].startswith("memory://")
    assert result["uri"].endswith(f"/videos/{api.video_filename(VIDEO_ID)}")
    assert result["sha256"] == hashlib.sha256(content).hexdigest()


def test_download_truncated_leaves_nothing(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    content = mp4_bytes(1000)
    short = {"Content-Length": "5000", "Content-Type": "video/mp4"}
    requests_mock.get(JOB_URL, json=_completed())
    requests_mock.get(CDN_URL, content=content, headers=short)
    requests_mock.get(CONTENT_URL, content=content, headers=short)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(VeoDownloadError, match="truncated: 1000 of 5000"):
        hook.download_video(VIDEO_ID, folder / "clip.mp4")
    assert os.listdir(folder) == []
    assert len(_gets(requests_mock, CDN_URL)) == 1
    assert len(_gets(requests_mock, CONTENT_URL)) == 2


def test_download_not_mp4_leaves_nothing(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    page = b"<html><body>AccessDenied</body></html>"
    requests_mock.get(JOB_URL, json=_completed())
    requests_mock.get(CDN_URL, content=page, headers={"Content-Length": str(len(page))})
    requests_mock.get(CONTENT_URL, content=page)
    with pytest.raises(VeoDownloadError, match="not a whole MP4"):
        hook.download_video(VIDEO_ID, f"{tmp_path}/")
    assert os.listdir(tmp_path) == []


def test_download_keeps_an_existing_file_on_failure(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    destination = tmp_path / "clip.mp4"
    destination.write_bytes(b"previous video")
    requests_mock.get(JOB_URL, json=_completed())
    requests_mock.get(CDN_URL, content=b"junk", headers={"Content-Length": "4"})
    requests_mock.get(CONTENT_URL, content=b"junk")
    with pytest.raises(VeoDownloadError):
        hook.download_video(VIDEO_ID, destination)
    assert os.listdir(tmp_path) == ["clip.mp4"]
    assert destination.read_bytes() == b"previous video"


def test_download_expired_url_reads_the_job_again(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    fresh_url = "https://cdn.test/files/video.mp4?sig=fresh"
    content = mp4_bytes(2048)
    requests_mock.get(CDN_URL, status_code=403, text="<Error>Request has expired</Error>")
    requests_mock.get(JOB_URL, json=_completed(video_url=fresh_url))
    requests_mock.get(fresh_url, content=content, headers=_mp4_headers(content))
    result = hook.download_video(VIDEO_ID, tmp_path / "clip.mp4", job=VideoJob.from_json(_completed()))
    assert [r.url for r in requests_mock.request_history] == [CDN_URL, JOB_URL, fresh_url]
    assert "Authorization" not in requests_mock.request_history[2].headers
    assert result["sha256"] == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "clip.mp4").read_bytes() == content


def test_download_same_expired_url_falls_back_to_content(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    content = mp4_bytes(2048)
    requests_mock.get(CDN_URL, status_code=410)
    requests_mock.get(JOB_URL, json=_completed())
    requests_mock.get(CONTENT_URL, content=content)
    result = hook.download_video(VIDEO_ID, tmp_path / "clip.mp4", job=VideoJob.from_json(_completed()))
    assert [r.url for r in requests_mock.request_history] == [CDN_URL, JOB_URL, CONTENT_URL]
    assert result["bytes"] == 2048


def test_download_of_unfinished_job_refused(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    requests_mock.get(JOB_URL, json=job_json(status="in_progress"))
    with pytest.raises(VeoDownloadError, match="not completed"):
        hook.download_video(VIDEO_ID, tmp_path / "clip.mp4")
    assert os.listdir(tmp_path) == []
    assert requests_mock.call_count == 1


# --------------------------------------------------------------------------------------------
# Async client (for the trigger)
# --------------------------------------------------------------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_client_reads_the_connection_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the synchronous get_connection was called in the event loop")

    monkeypatch.setattr(VeoHook, "get_connection", forbidden)
    awaited: list[str] = []
    real = VeoHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def spy(cls: type[VeoHook], conn_id: str) -> Any:
        awaited.append(conn_id)
        return await real(cls, conn_id)

    monkeypatch.setattr(VeoHook, "aget_connection", classmethod(spy))

    async def run() -> VideoJob:
        async with VeoHook().async_client() as client:
            return await client.get_video(VIDEO_ID)

    with serving(LoopbackApi(Answer(200, json=job_json()))):
        assert _run(run()).video_id == VIDEO_ID
    assert awaited == ["veo_default"]


# --------------------------------------------------------------------------------------------
# Download from the gateway (new-api): its own /content as video_url, bodies cut cleanly
# --------------------------------------------------------------------------------------------


CONTENT_PATH = f"/v1/videos/{VIDEO_ID}/content"


@pytest.mark.parametrize(
    ("url", "fetched_directly", "noted"),
    [
        (CONTENT_URL, None, False),
        (f"{CONTENT_URL}?variant=video", None, False),
        (f"HTTP://api.test:80/v1/videos/{VIDEO_ID}/content", None, False),
        (f"http://api.test/v1/videos/{VIDEO_ID}/content/../../../admin", None, True),
        ("http://api.test/v1/videos/another-job/content", None, True),  # another job's route
        ("http://api.test/v1/videos/x/content", None, True),
        ("http://api.test/admin/keys", None, True),
        ("http://api.test", None, True),
        # Another scheme or port is another origin: a CDN to this client, never given the key.
        (
            f"https://api.test/v1/videos/{VIDEO_ID}/content",
            f"https://api.test/v1/videos/{VIDEO_ID}/content",
            False,
        ),
        ("http://api.test:8080/v1/videos/x/content", "http://api.test:8080/v1/videos/x/content", False),
        ("http://api.test.evil/v1/videos/x/content", "http://api.test.evil/v1/videos/x/content", False),
        (CDN_URL, CDN_URL, False),
        ("http://169.254.169.254/latest/meta-data/", None, True),
        ("http://[fe80::1]/x.mp4", None, True),
        ("http://[fd00:ec2::254]/latest/meta-data/", None, True),
        ("http://metadata.google.internal/computeMetadata/v1/", None, True),
        ("http://2852039166/latest/meta-data/", None, True),
        ("http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/", None, True),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", None, True),
        ("http://100.100.100.200/latest/meta-data/", None, True),
        ("http://api.test:notaport/x", None, True),
    ],
)
def test_video_source_gives_the_key_only_to_this_jobs_content_route(
    hook: VeoHook, url: str, fetched_directly: str | None, noted: bool
) -> None:
    source = hook._settings.video_source(VIDEO_ID, url)
    assert source.url == fetched_directly
    assert source.api_path == CONTENT_PATH  # the only path ever sent the key
    assert (source.note is not None) == noted


def test_video_source_refuses_a_name_resolving_to_a_metadata_address(
    hook: VeoHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def resolve(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "sneaky.example"
        return [(2, 1, 6, "", ("169.254.169.254", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    source = hook._settings.video_source(VIDEO_ID, "http://sneaky.example/v.mp4")
    assert source.url is None and source.note and "resolves to 169.254.169.254" in source.note


def test_video_source_under_a_path_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(host="https://gw.example/comet"))
    settings = VeoHook()._settings
    own = settings.video_source("task_1", "https://gw.example/comet/v1/videos/task_1/content")
    assert (own.url, own.note, own.api_path) == (None, None, "/v1/videos/task_1/content")
    outside = settings.video_source("task_1", "https://gw.example/v1/videos/task_1/content")
    assert outside.url is None and outside.note  # the host's root is not the API's prefix


def test_video_url_on_the_apis_host_is_fetched_with_the_key_at_once(
    hook: VeoHook, requests_mock: Any, tmp_path: Path
) -> None:
    content = mp4_bytes(4096)
    requests_mock.get(CONTENT_URL, content=content)  # chunked: no Content-Length
    job = VideoJob.from_json(_completed(video_url=CONTENT_URL))
    result = hook.download_video(VIDEO_ID, tmp_path / "c.mp4", job=job)
    [fetch] = requests_mock.request_history
    assert fetch.headers["Authorization"] == f"Bearer {API_KEY}"
    assert result["bytes"] == 4096 and (tmp_path / "c.mp4").read_bytes() == content


def test_a_body_cut_cleanly_without_content_length_is_never_published(
    hook: VeoHook, requests_mock: Any, tmp_path: Path, logs: Any
) -> None:
    whole = mp4_bytes(8192)
    requests_mock.get(JOB_URL, json=_completed(video_url=CONTENT_URL))
    requests_mock.get(CONTENT_URL, [{"content": whole[:5000]}, {"content": whole}])
    folder = tmp_path / "out"
    folder.mkdir()
    result = hook.download_video(VIDEO_ID, folder / "clip.mp4")
    assert (folder / "clip.mp4").read_bytes() == whole and result["bytes"] == 8192
    assert os.listdir(folder) == ["clip.mp4"]
    assert any("not a whole MP4" in line and "'mdat'" in line for line in logs.lines("warning"))


def test_a_body_always_cut_leaves_nothing(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    requests_mock.get(JOB_URL, json=_completed(video_url=CONTENT_URL))
    requests_mock.get(CONTENT_URL, content=mp4_bytes(8192)[:5000])
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(VeoDownloadError, match="not a whole MP4") as raised:
        hook.download_video(VIDEO_ID, folder / "clip.mp4")
    assert raised.value.retryable is True
    assert os.listdir(folder) == []
    assert len(_gets(requests_mock, CONTENT_URL)) == 3


def test_content_that_keeps_failing_ends_without_an_airflow_retry(
    hook: VeoHook, requests_mock: Any, tmp_path: Path, sleeps: list[float]
) -> None:
    body = {"error": {"message": "Failed to resolve Gemini video URL", "type": "server_error"}}
    requests_mock.get(JOB_URL, json=_completed(video_url=CONTENT_URL))
    requests_mock.get(CONTENT_URL, status_code=502, json=body, headers={"X-Oneapi-Request-Id": "r-77"})
    with pytest.raises(api.VeoVideoUnavailableError) as raised:
        hook.download_video(VIDEO_ID, tmp_path / "clip.mp4")
    message = str(raised.value)
    assert raised.value.retryable is False
    assert "Failed to resolve Gemini video URL" in message and "r-77" in message and VIDEO_ID in message
    assert "billed" in message
    assert (
        len(_gets(requests_mock, CONTENT_URL)) == 5
    )  # the GET's own retries; a new read of the job is no help
    assert not (tmp_path / "clip.mp4").exists()


def test_a_cdn_outage_stays_retryable(hook: VeoHook, requests_mock: Any, tmp_path: Path) -> None:
    requests_mock.get(JOB_URL, json=_completed())
    requests_mock.get(CDN_URL, status_code=503)
    requests_mock.get(CONTENT_URL, status_code=404, json={"error": {"message": "Task not found"}})
    with pytest.raises(api.VeoError) as raised:
        hook.download_video(VIDEO_ID, tmp_path / "clip.mp4")
    assert not isinstance(raised.value, api.VeoVideoUnavailableError)


def test_download_reads_duration_and_size_and_warns_when_they_differ(
    hook: VeoHook, requests_mock: Any, tmp_path: Path, logs: Any
) -> None:
    from airflow_provider_veo.testing import SAMPLE_MP4

    content = SAMPLE_MP4.read_bytes()
    requests_mock.get(CDN_URL, content=content, headers=_mp4_headers(content))
    job = VideoJob.from_json(_completed(seconds=None, size=None))
    request = api.build_request(prompt="p", seconds=8, size="1920x1080")
    result = hook.download_video(VIDEO_ID, tmp_path / "c.mp4", job=job, request=request)
    assert (result["duration_seconds"], result["width"], result["height"]) == (1.5, 320, 180)
    warnings = logs.lines("warning")
    assert any("lasts 1.50 s, but 8 s were asked for" in line for line in warnings)
    assert any("is 320x180, but 1920x1080 was asked for" in line for line in warnings)


def test_download_says_nothing_when_the_video_is_what_was_asked(
    hook: VeoHook, requests_mock: Any, tmp_path: Path, logs: Any
) -> None:
    from airflow_provider_veo.testing import SAMPLE_MP4

    content = SAMPLE_MP4.read_bytes()
    requests_mock.get(CDN_URL, content=content, headers=_mp4_headers(content))
    job = VideoJob.from_json(_completed(seconds="2", size="16x9"))  # an orientation hint: not compared
    hook.download_video(VIDEO_ID, tmp_path / "c.mp4", job=job)
    assert logs.lines("warning") == []
