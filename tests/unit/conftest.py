"""Shared fixtures of the unit tests: a ``veo`` connection from the environment, fakes, helpers."""

from __future__ import annotations

import os

# Operators' execute() called directly wants unit-test mode; set before Airflow is imported.
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

import email.parser
import email.policy
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from airflow_provider_veo.api import StoredVideo

API_KEY = "sk-secret-123"
BASE_URL = "http://api.test"
VIDEO_ID = "veo3.1:1764905797-816jUFZAkM"
JOB_URL = f"{BASE_URL}/v1/videos/{VIDEO_ID}"
#: What a serialized VeoTaskTrigger carries (primitives, never the key): the trigger and every deferral.
TRIGGER_KWARGS = frozenset(
    {"video_id", "veo_conn_id", "poll_interval", "end_time", "visible_by", "status_read_at"}
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64))
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(range(64))
#: The smallest whole MP4 head: an ``ftyp`` box and an empty ``moov``; ``mp4_bytes`` adds the ``mdat``.
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08moov"


def mp4_bytes(size: int) -> bytes:
    """A structurally whole MP4 of exactly ``size`` bytes (at least 40): ``ftyp``, ``moov``, ``mdat``."""
    filler = bytes(i % 251 for i in range(size - len(MP4_HEAD) - 8))
    return MP4_HEAD + (8 + len(filler)).to_bytes(4, "big") + b"mdat" + filler


def conn_json(host: str = BASE_URL, password: str | None = API_KEY, **extra: Any) -> str:
    extra.setdefault("retry_base_delay", 0.001)
    conn: dict[str, Any] = {"conn_type": "veo", "host": host, "extra": extra}
    if password is not None:
        conn["password"] = password
    return json.dumps(conn)


@pytest.fixture(autouse=True)
def veo_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    """``veo_default`` points at a fake host, with retries that wait (almost) nothing."""
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json())


def job_json(video_id: str = VIDEO_ID, status: str = "queued", **fields: Any) -> dict[str, Any]:
    """A job object as CometAPI answers it."""
    job: dict[str, Any] = {
        "id": video_id,
        "object": "video",
        "model": "veo3.1-fast",
        "status": status,
        "progress": 0,
        "created_at": 1764905797,
        "seconds": "4",
        "size": "1280x720",
    }
    job.update(fields)
    return job


def stored_video(**fields: Any) -> StoredVideo:
    """A download's result as the operators return it, here an S3 object; ``fields`` override."""
    video: dict[str, Any] = {
        "video_id": VIDEO_ID,
        "uri": "s3://aws_media@media/veo/clip.mp4",
        "asset_uri": "s3://media/veo/clip.mp4",
        "bytes": 3,
        "sha256": "ab" * 32,
        "content_type": "video/mp4",
        "model": "veo3.1",
        "upstream_model": None,
        "seconds": "8",
        "size": "1280x720",
        "duration_seconds": 8.0,
        "width": 1280,
        "height": 720,
        "prompt": "a wren",
        "prompt_sha256": "cd" * 32,
        "input_reference": [],
        "usage": None,
        **fields,
    }
    return video  # type: ignore[return-value]


def error_json(message: str, code: str = "", type_: str = "comet_api_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": "", "code": code}}


def refused_port() -> int:
    """A loopback port nothing listens on: bound, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    content: bytes


def multipart_parts(content_type: str, body: bytes) -> list[Part]:
    """Parse a ``multipart/form-data`` body into its parts, in order."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    )
    assert message.is_multipart(), content_type
    parts = []
    for part in message.iter_parts():
        disposition = part.get("Content-Disposition")
        name = part.get_param("name", header="content-disposition")
        parts.append(
            Part(
                name=str(name),
                filename=part.get_filename(),
                content_type=part.get("Content-Type") and part.get_content_type(),
                content=part.get_payload(decode=True),
            )
        )
        assert disposition is not None
    return parts


class FakeTI:
    """Records ``xcom_push`` calls."""

    try_number = 1
    task_id = "generate"
    map_index = -1

    def __init__(self) -> None:
        self.pushed: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return dict(self.pushed).get(key)


class FakeStateStore:
    """A dict-backed ``task_state_store``."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)
        self.sets: list[tuple[str, Any]] = []

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.sets.append((key, value))
        self.values[key] = value


@pytest.fixture
def ti() -> FakeTI:
    return FakeTI()


@pytest.fixture
def context(ti: FakeTI) -> dict[str, Any]:
    """A minimal task context, without ``task_state_store`` (as on Airflow 3.1 and 3.2)."""
    return {"ti": ti}


@dataclass
class Logs:
    """Log lines from Airflow's structlog loggers (``self.log``) and from stdlib loggers."""

    structlog_events: list[dict[str, Any]]
    caplog: pytest.LogCaptureFixture

    def lines(self, level: str | None = None) -> list[str]:
        found = [
            str(event.get("event"))
            for event in self.structlog_events
            if level is None or event.get("log_level") == level
        ]
        found += [
            record.getMessage()
            for record in self.caplog.records
            if level is None or record.levelname.lower() == level
        ]
        return found

    @property
    def text(self) -> str:
        return "\n".join(self.lines())


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        yield Logs(events, caplog)


@pytest.fixture
def memory_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An object store (fsspec's in-memory one) behind ``memory://<bucket>``, as ObjectStoragePath sees it."""
    from airflow.sdk.io import store
    from fsspec.implementations.memory import MemoryFileSystem

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    filesystem = MemoryFileSystem()
    store.attach(protocol="memory", fs=filesystem)
    bucket = f"veo-{uuid.uuid4().hex[:12]}"
    yield bucket
    if filesystem.exists(f"/{bucket}"):
        filesystem.rm(f"/{bucket}", recursive=True)
