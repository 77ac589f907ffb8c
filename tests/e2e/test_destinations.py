"""Where videos go, in real DAG runs (``dag.test()``) against the emulator: what is refused before
paying, and what a store failing after paying says.

fsspec's in-memory filesystem stands in for the object store, attached in this process where
``dag.test()`` runs the task; the same cases against real S3, GCS and Azure servers are in
``tests/objectstore/``.
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
from airflow_provider_veo.testing.runner import run_dag

from .conftest import dag_named

DAGS = "veo_destination_dags.py"


def run(destination: str) -> Any:
    return run_dag(dag_named("veo_destination", DAGS), {"destination": destination})


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


def test_a_read_only_folder_is_refused_before_paying(
    emulator: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = run(f"{folder}/videos/")
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)
    task = result.task("generate_video")
    assert (result.state, task.state, task.try_number) == ("failed", "failed", 1)  # not retried
    assert emulator.posts == []
    assert f"cannot write to {folder}/videos: {folder} is on a read-only filesystem" in capfd.readouterr().out


def test_a_store_without_a_filesystem_is_refused_before_paying(
    emulator: VeoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run("nosuchfs://media/videos/")
    assert result.task("generate_video").state == "failed"
    assert result.task("generate_video").try_number == 1
    assert emulator.posts == []
    assert "no filesystem for nosuchfs:// is installed" in capfd.readouterr().out


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
    assert result.task("generate_video").state == "failed"
    assert emulator.posts == []
    assert f"the bucket or container of memory://{name}/videos/" in capfd.readouterr().out


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
    assert len(emulator.posts) <= 2 and len(uploads) == 2
    video_id = task.xcom["video_id"]
    log = capfd.readouterr().out
    assert "Could not upload the video: the store did not take the write to memory://" in log
    assert "ConnectionError: Could not connect to the endpoint URL" in log
    assert f"Video {video_id} is paid for" in log
    assert f"VeoDownloadVideoOperator(video_id={video_id!r}" in log
    assert f"python -m airflow_provider_veo download {video_id}" in log
    assert filesystem.find(f"/{name}") == []  # nothing at the key, no write check left behind


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
    assert f"Removed 1 temporary file(s) of {tmp_path}/clip.mp4 left by an earlier try: {stale}" in (
        capfd.readouterr().out
    )
