"""The store fails part-way through the upload of a paid video, on S3 (moto) and Azure (Azurite): the
server hangs (SIGSTOP) as soon as an unfinished upload shows (an S3 multipart upload, an Azure blob
with staged blocks), stays hung past the task's ``execution_timeout`` (a body sent to a hung server
has no client-side timeout in s3fs: that bound is what ends the attempt), and then comes back,
finishing whatever requests were queued while it was frozen.

What must hold, as for any all-or-nothing write: no object at the final key (no reader ever sees a
partial video), no S3 multipart upload left open (billed, and listed by nothing that lists files),
and the task fails saying the video is paid for and how to fetch it (its id, the operator and the
CLI), so nobody pays for it twice. GCS is left out: no API lists its unfinished resumable uploads,
so the test could not tell when the upload is under way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_veo.api import video_filename
from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from . import servers
from .conftest import Store, azure_store, connect, dag_named, s3_store

#: Large enough for a multipart upload (s3fs goes multipart from two 50 MiB parts), small enough to be quick.
VIDEO_BYTES = 160 << 20
#: The worker's S3 client gives up on a hung server after this many seconds per request it can time
#: out (connecting, reading an answer), and does not retry: the test waits for the task, not for
#: botocore's default minute per attempt.
CLIENT_TIMEOUT = 5
#: The store stays frozen this long, past the task's execution_timeout (50 s from the task's start).
HOLD = 70.0
#: How long the hung server may take to finish what was queued while it was stopped.
SETTLE_DEADLINE = 60.0


@pytest.fixture(params=["s3", "azure"])
def hung_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """A server of this test's own (it is going to be frozen), with a client that times out."""
    server = servers.start_s3(tmp_path) if request.param == "s3" else servers.start_azurite(tmp_path)
    try:
        if request.param == "s3":
            config = {
                "connect_timeout": CLIENT_TIMEOUT,
                "read_timeout": CLIENT_TIMEOUT,
                "retries": {"max_attempts": 1, "mode": "standard"},
            }
            store = s3_store(server, "veo_os_s3_hung", config)
        else:
            store = azure_store(server, "veo_os_azure_hung")
        connect(store, monkeypatch)
        yield store
    finally:
        server.stop()


def _settled(store: Store, prefix: str) -> tuple[dict[str, int], list[str]]:
    """The objects and open uploads under ``prefix`` once the resumed server has stopped changing them."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    last: tuple[dict[str, int], list[str]] | None = None
    while True:
        now = (store.objects(prefix), store.open_uploads(prefix))
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(2)


def test_store_hangs_mid_upload_leaves_nothing_and_says_how_to_fetch_the_paid_video(
    emulator: VeoEmulator, hung_store: Store, prefix: str, capfd: pytest.CaptureFixture[str]
) -> None:
    store = hung_store
    frozen = threading.Event()
    done = threading.Event()

    def freeze_once_the_upload_is_open_then_thaw() -> None:
        while not done.is_set():
            try:
                if store.open_uploads(prefix):
                    store.server.pause()
                    frozen.set()
                    break
            except Exception:  # the server is busy receiving: ask again
                pass
            time.sleep(0.05)
        done.wait(HOLD)
        store.server.resume()

    watcher = threading.Thread(target=freeze_once_the_upload_is_open_then_thaw, daemon=True)
    watcher.start()
    prompt = f"A lighthouse in a storm, uploaded to a store that hangs. [emu:bytes={VIDEO_BYTES}]"
    try:
        result = run_dag(
            dag_named("veo_objectstore_generate_only"),
            run_conf={"destination": store.uri(prefix), "prompt": prompt},
        )
    finally:
        done.set()
        watcher.join()
        store.server.resume()
    log = capfd.readouterr().out

    assert frozen.is_set(), (
        "the upload never started an unfinished upload: the store was not failed mid-upload"
    )
    assert result.task("generate_video").state == "failed"
    (job,) = emulator.jobs.values()
    video_key = prefix + video_filename(job.id)
    objects, open_uploads = _settled(store, prefix)
    # Every broken promise at once, so one run tells all that a change fixed or broke.
    broken = []
    if video_key in objects:
        broken.append(f"an object is at the final key of the failed task: {objects}")
    elif objects:
        broken.append(f"objects left behind: {objects}")
    if store.scheme == "s3" and open_uploads:  # billed until aborted; Azure drops uncommitted blocks itself
        broken.append(f"multipart uploads left open: {open_uploads}")
    # The paid video can still be fetched, and the failure says how.
    for advice in (
        f"Video {job.id} is paid for",
        f"VeoDownloadVideoOperator(video_id={job.id!r}",
        f"python -m airflow_provider_veo download {job.id}",
    ):
        if advice not in log:
            broken.append(f"the task's failure does not say {advice!r}")
    errors = "\n".join(line[:400] for line in log.splitlines() if "error" in line.lower())[-3000:]
    assert not broken, "\n".join(broken) + f"\nthe task's errors:\n{errors}"
