"""Where videos go, in real DAG runs (``dag.test()``) against the emulator: what is refused before
paying, what a store failing after paying says, and what a killed try left.

fsspec's in-memory filesystem stands in for the object store, attached in this process where
``dag.test()`` runs the task; the same cases against real S3, GCS and Azure servers are in
``tests/objectstore/``. Each case records its row of ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import RunResult, run_dag

from . import reliability
from .conftest import dag_named

DAGS = "veo_destination_dags.py"
VIA = "DAG run, poke"

CASES = [
    "destination: folder on a read-only filesystem",
    "destination: object store without its filesystem installed",
    "destination: bucket that does not exist",
    "destination: store unreachable during the upload, after paying",
    "destination: .part file a killed try left",
]
TABLE = reliability.section(
    "The destination",
    "the emulator's default profile, in full `dag.test()` runs of a generate task with `retries=1`; "
    "fsspec's in-memory filesystem as the object store, made to fail where the case says",
    CASES,
)


def run(destination: str) -> RunResult:
    return run_dag(dag_named("veo_destination", DAGS), {"destination": destination})


def failed_once(result: RunResult, log: str, *fragments: str) -> str:
    """The task failed on its first try, without a retry, saying every fragment; the row's outcome."""
    task = result.task("generate_video")
    assert (result.state, task.state, task.try_number) == ("failed", "failed", 1)
    for fragment in fragments:
        assert fragment in log, fragment
    return "fails at once: " + ", ".join(f"“{fragment}”" for fragment in fragments)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """An in-memory object store behind ``memory://<bucket>``, and the bucket's name."""
    from airflow.sdk.io import attach, store
    from fsspec.implementations.memory import MemoryFileSystem

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    filesystem = MemoryFileSystem(skip_instance_cache=True)
    filesystem.store = {}
    filesystem.pseudo_dirs = [""]
    attach(protocol="memory", fs=filesystem)
    yield filesystem, f"veo-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder on a read-only tmpfs (as root); where mounting is not allowed, statvfs says read-only."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]
    mounted = subprocess.run(mount, capture_output=True, check=False).returncode == 0
    if not mounted:
        real_statvfs = os.statvfs

        def statvfs(path: Any) -> Any:
            found = real_statvfs(path)
            if Path(path) != folder:
                return found
            return os.statvfs_result((*found[:8], found.f_flag | os.ST_RDONLY, found.f_namemax))

        monkeypatch.setattr(os, "statvfs", statvfs)
    try:
        yield folder, "a read-only tmpfs" if mounted else "simulated read-only mount"
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_a_read_only_folder_is_refused_before_paying(
    emulator: VeoEmulator, read_only_folder: tuple[Path, str], capfd: pytest.CaptureFixture[str]
) -> None:
    folder, how = read_only_folder
    result = run(f"{folder}/videos/")
    log = capfd.readouterr().out
    assert f"cannot write to {folder}/videos: {folder} is on a read-only filesystem" in log
    text = failed_once(result, log, "Invalid `destination`", "is on a read-only filesystem")
    assert emulator.posts == []
    TABLE.record(CASES[0], f"{VIA}, {how}", text, 0, 0, "nothing")


def test_a_store_without_a_filesystem_is_refused_before_paying(
    emulator: VeoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run("nosuchfs://media/videos/")
    text = failed_once(result, capfd.readouterr().out, "no filesystem for nosuchfs:// is installed")
    assert emulator.posts == []
    TABLE.record(CASES[1], VIA, text, 0, 0, "nothing")


def test_a_missing_bucket_is_refused_before_paying(
    emulator: VeoEmulator,
    bucket: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    filesystem, name = bucket

    def no_such_bucket(path: str, value: bytes, **kwargs: Any) -> None:
        raise FileNotFoundError(f"NoSuchBucket: {path.strip('/').split('/')[0]}")

    monkeypatch.setattr(filesystem, "pipe_file", no_such_bucket)
    result = run(f"memory://{name}/videos/")
    text = failed_once(result, capfd.readouterr().out, "the bucket or container of", "does not exist")
    assert emulator.posts == []
    TABLE.record(CASES[2], VIA, text, 0, 0, "nothing")


def test_a_store_failing_after_paying_says_how_to_fetch_the_video(
    emulator: VeoEmulator,
    bucket: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    filesystem, name = bucket
    uploads: list[str] = []

    def endpoint_down(lpath: str, rpath: str, **kwargs: Any) -> None:
        uploads.append(rpath)
        raise ConnectionError("Could not connect to the endpoint URL: http://127.0.0.1:9/")

    monkeypatch.setattr(filesystem, "put_file", endpoint_down)
    result = run(f"memory://{name}/videos/")
    task = result.task("generate_video")
    assert (result.state, task.state) == ("failed", "failed")
    assert task.try_number == 2  # retryable: the second try resumed the paid job and failed the same way
    assert len(uploads) == 2
    posts = len(emulator.posts)
    assert posts in (1, 2)  # 1 where the task_state_store resumes the job (Airflow 3.3+)
    video_id = task.xcom["video_id"]
    log = capfd.readouterr().out
    fragments = [
        "Could not upload the video: the store did not take the write to memory://",
        "ConnectionError: Could not connect to the endpoint URL",
        f"Video {video_id} is paid for",
        f"VeoDownloadVideoOperator(video_id={video_id!r}",
        f"python -m airflow_provider_veo download {video_id}",
    ]
    for fragment in fragments:
        assert fragment in log, fragment
    assert filesystem.find(f"/{name}") == []  # nothing at the key, no write check left behind
    TABLE.record(
        CASES[3],
        VIA,
        "fails, retryable (VeoStorageError), on both tries: “Could not upload the video: the store did "
        "not take the write”, “ConnectionError”, “Video <id> is paid for”, and both ways to fetch it",
        posts,
        posts,
        "nothing",
    )


def test_the_next_try_removes_the_part_file_a_killed_try_left(
    emulator: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / ".clip.mp4.0123456789ab.part"  # what a try killed mid-download leaves
    stale.write_bytes(b"half a video")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    result = run(f"{tmp_path}/clip.mp4")
    assert result.state == "success"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.json", "clip.mp4"]
    removed = f"Removed 1 temporary file(s) of {tmp_path}/clip.mp4 left by an earlier try: {stale}"
    assert removed in capfd.readouterr().out
    TABLE.record(
        CASES[4],
        VIA,
        "success; the log says “Removed 1 temporary file(s) of … left by an earlier try”",
        len(emulator.posts),
        len(emulator.posts),
        "the verified MP4 and its manifest; the old `.part` removed",
    )
