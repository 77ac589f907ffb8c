"""Generate to each real store through ``dag.test()``: from a reference image read from the store,
the whole video (its sha256 equal to what the API served), the manifest beside it and the batch
summary in the same folder; and a 1 GiB video through S3's multipart upload with the worker's
memory flat. One DAG run per case: each costs seconds of Airflow's own start-up on a busy machine."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from airflow_provider_veo.api import video_filename
from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from .conftest import Store, connect, dag_named

ROOT = Path(__file__).resolve().parents[2]
FIRST_FRAME = ROOT / "example_dags" / "frames" / "first_frame.png"
#: Larger than the sample clip, so the bytes really stream, but quick on a busy machine.
VIDEO_BYTES = 8 << 20
ONE_GIB = 1 << 30
#: What the worker may grow by while it streams 1 GiB (its chunks, s3fs's parts in flight, the
#: first-time imports of the upload path): far below the video's size, whatever the machine's load.
MEMORY_BOUND = 400 << 20


def test_generate_from_a_stored_image_to_the_store_with_manifest_and_summary(
    emulator: VeoEmulator, store: Store, prefix: str
) -> None:
    image = FIRST_FRAME.read_bytes()
    store.put(f"{prefix}frames/first_frame.png", image)
    conf = {
        "destination": store.uri(prefix),
        "prompt": f"A heron lands on a misty pond at dawn. [emu:bytes={VIDEO_BYTES}]",
        "reference": store.uri(f"{prefix}frames/first_frame.png"),
    }
    result = run_dag(dag_named("veo_objectstore_generate"), run_conf=conf)

    assert [(t.task_id, t.state) for t in sorted(result.tasks, key=lambda t: t.task_id)] == [
        ("generate_video", "success"),
        ("summary", "success"),
    ]
    # The reference image went to the API as read from the store, byte for byte.
    (post,) = emulator.posts
    (part,) = [part for part in post.files if part.name == "input_reference"]
    assert (part.filename, part.content_type, part.size) == ("first_frame.png", "image/png", len(image))
    assert part.sha256 == hashlib.sha256(image).hexdigest()

    # The whole video, its manifest and the summary, and nothing else (no temp or partial object).
    (job,) = emulator.jobs.values()
    video_key = prefix + video_filename(job.id)
    manifest_key = video_key.removesuffix(".mp4") + ".json"
    objects = store.objects(prefix)
    expected_keys = [f"{prefix}frames/first_frame.png", video_key, manifest_key, f"{prefix}summary.json"]
    assert sorted(objects) == sorted(expected_keys)
    assert objects[video_key] == VIDEO_BYTES
    assert store.sha256(video_key) == emulator.expected_sha256(job.id)

    stored = result.task("generate_video").xcom["return_value"]
    assert stored["uri"] == store.uri(video_key)
    assert (stored["video_id"], stored["bytes"]) == (job.id, VIDEO_BYTES)
    assert stored["sha256"] == emulator.expected_sha256(job.id)

    manifest = json.loads(store.read(manifest_key))
    assert (manifest["video_id"], manifest["bytes"]) == (job.id, VIDEO_BYTES)
    assert manifest["sha256"] == emulator.expected_sha256(job.id)
    assert [ref["sha256"] for ref in manifest["input_reference"]] == [hashlib.sha256(image).hexdigest()]

    (row,) = json.loads(store.read(f"{prefix}summary.json"))
    assert (row["status"], row["video_id"], row["bytes"], row["uri"]) == (
        "stored",
        job.id,
        VIDEO_BYTES,
        stored["uri"],
    )


def _reset_peak_rss() -> None:
    """Start a new peak: Linux resets VmHWM to the current RSS on ``5`` to clear_refs."""
    Path("/proc/self/clear_refs").write_text("5")


def _rss_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(field_name)


def test_one_gib_video_goes_to_s3_by_multipart_upload_in_flat_memory(
    emulator: VeoEmulator,
    s3: Store,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    connect(s3, monkeypatch)
    parts_seen: list[int] = []
    done = threading.Event()

    def watch_multipart() -> None:  # the upload is multipart if S3 ever lists it as an open upload
        while not done.wait(0.2):
            parts_seen.extend([1] * len(s3.open_uploads(prefix)))

    watcher = threading.Thread(target=watch_multipart, daemon=True)
    prompt = f"A glacier calves into a fjord, filmed for an hour. [emu:bytes={ONE_GIB}]"
    dag = dag_named("veo_objectstore_generate")
    try:
        _reset_peak_rss()
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS through /proc/self/clear_refs: {exc}")
    before = _rss_kib("VmRSS") * 1024
    watcher.start()
    try:
        result = run_dag(dag, run_conf={"destination": s3.uri(prefix), "prompt": prompt})
    finally:
        done.set()
        watcher.join()
    peak = _rss_kib("VmHWM") * 1024
    log = capfd.readouterr().out

    errors = "\n".join(line[:600] for line in log.splitlines() if "error" in line.lower())[-4000:]
    assert result.task("generate_video").state == "success", f"the task's errors:\n{errors}"
    (job,) = emulator.jobs.values()
    video_key = prefix + video_filename(job.id)
    assert s3.objects(video_key) == {video_key: ONE_GIB}
    assert s3.sha256(video_key) == emulator.expected_sha256(job.id)
    assert parts_seen, "the 1 GiB video was not uploaded through a multipart upload"
    assert s3.open_uploads(prefix) == []
    assert peak - before < MEMORY_BOUND, (
        f"the worker grew by {(peak - before) >> 20} MiB while storing a {ONE_GIB >> 20} MiB video"
    )
