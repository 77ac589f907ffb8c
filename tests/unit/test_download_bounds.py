"""A download's bounds: the size cap, the free-space check, the overall deadline, the start line.

requests-mock serves the bodies of the size cases; the deadline is met with a real server on a
loopback port that sends one byte a second, which only an overall deadline ends.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.api import VeoDownloadError, VeoInputError, VideoJob
from airflow_provider_veo.hooks import download
from airflow_provider_veo.hooks import veo as veo_module
from airflow_provider_veo.hooks.settings import Settings
from airflow_provider_veo.hooks.veo import VeoHook

from .conftest import API_KEY, BASE_URL, JOB_URL, VIDEO_ID, conn_json, job_json, mp4_bytes

CDN_URL = "https://cdn.test/files/video.mp4?X-Goog-Signature=secret-signature"
CONTENT_URL = f"{JOB_URL}/content"


def _completed(video_url: str | None = CDN_URL) -> VideoJob:
    return VideoJob.from_json(job_json(status="completed", progress=100, video_url=video_url))


def _use(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> VeoHook:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(**extra))
    return VeoHook()


def _provider_lines(logs: Any) -> str:
    """What the provider logged (urllib3's own DEBUG lines, off in a task, do show a URL's query)."""
    return "\n".join(str(event.get("event")) for event in logs.structlog_events)


def _fetches(requests_mock: Any) -> list[str]:
    return [r.url for r in requests_mock.request_history]


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def _settings(**extra: Any) -> Settings:
    conn = SimpleNamespace(conn_id="veo_default", host=BASE_URL, schema=None, port=None, password=API_KEY)
    conn.extra_dejson = extra  # type: ignore[attr-defined]
    return Settings.from_connection(conn)  # type: ignore[arg-type]


def test_bounds_default_to_the_documented_values() -> None:
    settings = _settings()
    assert settings.download_timeout == api.DEFAULT_DOWNLOAD_TIMEOUT == 1800
    assert settings.max_download_bytes == api.DEFAULT_MAX_DOWNLOAD_BYTES == 4 * 1024**3
    assert _settings(download_timeout="", max_download_bytes=None) == settings  # left empty in the form


def test_bounds_are_read_from_the_extra() -> None:
    settings = _settings(download_timeout="90.5", max_download_bytes=1000)
    assert (settings.download_timeout, settings.max_download_bytes) == (90.5, 1000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("download_timeout", 0),
        ("download_timeout", -5),
        ("download_timeout", "soon"),
        ("download_timeout", "inf"),
        ("download_timeout", True),
        ("max_download_bytes", 0),
        ("max_download_bytes", "4 GiB"),
        ("max_download_bytes", 1.5e400),
        ("max_download_bytes", False),
    ],
)
def test_bad_bounds_are_refused_naming_the_option(name: str, value: Any) -> None:
    with pytest.raises(VeoInputError, match=name) as raised:
        _settings(**{name: value})
    assert "must be a positive" in str(raised.value)


# --------------------------------------------------------------------------------------------
# The size cap and the free space
# --------------------------------------------------------------------------------------------


def test_a_content_length_over_the_cap_is_refused_before_any_byte_is_written(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path
) -> None:
    hook = _use(monkeypatch, max_download_bytes=10_000)
    content = mp4_bytes(20_000)
    requests_mock.get(CDN_URL, content=content, headers={"Content-Length": str(len(content))})
    with pytest.raises(VeoInputError, match="max_download_bytes") as raised:
        hook.download_video(VIDEO_ID, f"{tmp_path}/", job=_completed())
    assert "announces 20000 bytes" in str(raised.value) and "(10000)" in str(raised.value)
    assert raised.value.retryable is False
    assert _fetches(requests_mock) == [CDN_URL]  # refused at once: no other attempt
    assert os.listdir(tmp_path) == []


def test_a_body_without_content_length_is_cut_at_the_cap(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path
) -> None:
    hook = _use(monkeypatch, max_download_bytes=3 * 1024 * 1024)
    content = mp4_bytes(5 * 1024 * 1024)
    requests_mock.get(CDN_URL, content=content)  # no Content-Length, as a streamed body
    folder = tmp_path / "out"
    with pytest.raises(VeoInputError, match="goes on past 3145728 bytes"):
        hook.download_video(VIDEO_ID, folder / "clip.mp4", job=_completed())
    assert _fetches(requests_mock) == [CDN_URL]
    assert os.listdir(folder) == []  # the staged part is gone


def test_a_video_larger_than_the_free_space_is_refused_before_writing(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path
) -> None:
    hook = _use(monkeypatch)
    content = mp4_bytes(8192)
    requests_mock.get(CDN_URL, content=content, headers={"Content-Length": str(len(content))})
    monkeypatch.setattr(download.os, "fstatvfs", lambda fd: SimpleNamespace(f_bavail=1, f_frsize=4096))
    with pytest.raises(VeoInputError, match="4096 bytes free, the video announces 8192") as raised:
        hook.download_video(VIDEO_ID, f"{tmp_path}/", job=_completed())
    assert "nothing was left there" in str(raised.value)
    assert _fetches(requests_mock) == [CDN_URL]  # not something another attempt mends
    assert os.listdir(tmp_path) == []


def test_a_video_within_the_bounds_is_written(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path
) -> None:
    hook = _use(monkeypatch, max_download_bytes=8192)
    content = mp4_bytes(8192)  # exactly the cap
    requests_mock.get(CDN_URL, content=content, headers={"Content-Length": str(len(content))})
    result = hook.download_video(VIDEO_ID, tmp_path / "clip.mp4", job=_completed())
    assert result["bytes"] == 8192 and (tmp_path / "clip.mp4").read_bytes() == content


# --------------------------------------------------------------------------------------------
# The deadline
# --------------------------------------------------------------------------------------------


@pytest.fixture
def trickling_cdn() -> Iterator[str]:
    """A server on a loopback port that announces a 1 MiB video and sends it a byte a second."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1048576\r\n\r\n")
                try:
                    while not stop.wait(1.0):
                        conn.sendall(b"\0")
                except OSError:
                    pass  # the client hung up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/files/clip.mp4?sig=secret-signature"
    stop.set()
    listener.close()
    thread.join(timeout=10)


def test_a_trickling_server_is_ended_by_the_download_deadline(
    monkeypatch: pytest.MonkeyPatch, trickling_cdn: str, tmp_path: Path, logs: Any
) -> None:
    # The per-read timeout (60 s) never fires: a byte comes every second. Only the deadline ends it.
    hook = _use(monkeypatch, download_timeout=1.5, timeout=60)
    job_reads: list[str] = []
    monkeypatch.setattr(hook, "get_video", lambda video_id: job_reads.append(video_id) or _completed())
    with pytest.raises(VeoDownloadError, match=r"did not finish within download_timeout \(1.5 s\)") as raised:
        hook.download_video(VIDEO_ID, f"{tmp_path}/", job=_completed(trickling_cdn))
    assert raised.value.retryable is True
    assert os.listdir(tmp_path) == []
    # The deadline covers every attempt: once it has passed, no other attempt (no job read for one).
    assert job_reads == []
    assert "secret-signature" not in _provider_lines(logs)


def test_a_passed_deadline_stops_the_attempts(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path
) -> None:
    hook = _use(monkeypatch, download_timeout=30)
    requests_mock.get(CDN_URL, content=b"not an mp4", headers={"Content-Length": "10"})
    # The deadline is taken at 0 (30 s later); the first attempt fails at 100.
    now = [0.0]
    monkeypatch.setattr(download, "time", SimpleNamespace(monotonic=lambda: now[0]))
    receive = veo_module.receive

    def fails_late(*args: Any) -> download.Written:
        try:
            return receive(*args)
        finally:
            now[0] = 100.0

    monkeypatch.setattr(veo_module, "receive", fails_late)
    with pytest.raises(VeoDownloadError, match="not a whole MP4"):
        hook.download_video(VIDEO_ID, f"{tmp_path}/", job=_completed())
    assert _fetches(requests_mock) == [CDN_URL]


# --------------------------------------------------------------------------------------------
# The start line
# --------------------------------------------------------------------------------------------


def test_each_download_starts_with_a_line_naming_the_video_and_its_source(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any, tmp_path: Path, logs: Any
) -> None:
    hook = _use(monkeypatch)
    content = mp4_bytes(4096)
    requests_mock.get(CDN_URL, content=content, headers={"Content-Length": str(len(content))})
    requests_mock.get(CONTENT_URL, content=content)
    hook.download_video(VIDEO_ID, tmp_path / "a.mp4", job=_completed())
    hook.download_video(VIDEO_ID, tmp_path / "b.mp4", job=_completed(video_url=None))
    started = [line for line in logs.lines("info") if line.startswith("Downloading video")]
    assert started == [
        f"Downloading video {VIDEO_ID} from https://cdn.test/files/video.mp4",
        f"Downloading video {VIDEO_ID} from {CONTENT_URL}",
    ]
    assert "secret-signature" not in _provider_lines(logs) and API_KEY not in _provider_lines(logs)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://cdn.test/v.mp4?X-Amz-Signature=abc#frag", "https://cdn.test/v.mp4"),
        ("https://user:pass@cdn.test:8443/v.mp4?sig=abc", "https://cdn.test:8443/v.mp4"),
        ("http://[::1]:9000/files/v.mp4?token=t", "http://[::1]:9000/files/v.mp4"),
    ],
)
def test_the_source_shown_has_no_query_nor_user_info(url: str, shown: str) -> None:
    assert download.source_of(url) == shown


def test_the_deadline_wakes_a_blocked_read(tmp_path: Path) -> None:
    """At the deadline the hasher shuts the socket down, which ends a read waiting for bytes that do
    not come."""
    left, right = socket.socketpair()
    response = SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=left)))
    hasher = download._Hasher(response, time.monotonic() + 0.05)  # type: ignore[arg-type]
    hasher.start()
    assert left.recv(10) == b""  # woken by the shutdown, not by the peer
    hasher.finish()
    assert hasher.fired
    left.close()
    right.close()


def test_the_deadline_ends_a_body_that_never_stops_flowing() -> None:
    """A server fast enough that a chunk always waits is still cut off at the deadline."""
    left, right = socket.socketpair()
    response = SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=left)))
    hasher = download._Hasher(response, time.monotonic() - 1)  # type: ignore[arg-type]
    for _ in range(download.PIPELINE_DEPTH):
        hasher.chunks.put(b"x" * 16)  # queued before the thread runs: its wait never times out
    hasher.start()
    assert left.recv(10) == b""
    hasher.finish()
    assert hasher.fired
    left.close()
    right.close()
