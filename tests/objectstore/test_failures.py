"""The store fails part-way through the upload of a paid video, on S3 (moto), Azure (Azurite) and GCS
(gcp-storage-emulator): the store hangs once the upload is under way, stays hung past the task's
``execution_timeout`` (a body sent to a hung server has no client-side timeout in s3fs or gcsfs: that
bound is what ends the attempt), and then comes back, finishing whatever requests were queued while
it was frozen. S3 and Azure servers are frozen (SIGSTOP) as soon as an unfinished upload shows (an S3
multipart upload, an Azure blob with staged blocks). No API lists GCS's unfinished resumable uploads,
so GCS is reached through a TCP proxy on loopback that sees the upload's requests go by and stops
forwarding anything once the resumable upload is created and part of its body has passed.

What must hold, as for any all-or-nothing write: no object at the final key (no reader ever sees a
partial video), no S3 multipart upload left open (billed, and listed by nothing that lists files),
and the task fails saying the video is paid for and how to fetch it (its id, the operator and the
CLI), so nobody pays for it twice; on GCS, the upload was created once (one resumable session), never
started over.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.api import video_filename
from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from . import servers
from .conftest import Store, azure_store, connect, dag_named, gcs_store, s3_store

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
#: The GCS proxy stops forwarding once this much has followed the resumable upload's creation: half-way
#: through the second of the upload's 16 MiB chunks, so the emulator holds part of the video.
GCS_STALL_AFTER = 24 << 20
#: How long the whole test may wait for anything the proxy has to see, however busy the machine.
PROXY_DEADLINE = 300.0


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
    """The objects and open uploads under ``prefix`` once the resumed server has stopped changing them
    (GCS lists no unfinished uploads: its objects only)."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    last: tuple[dict[str, int], list[str]] | None = None
    while True:
        now = (store.objects(prefix), store.open_uploads(prefix) if store.scheme != "gs" else [])
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(2)


def test_store_hangs_mid_upload_leaves_nothing_and_says_how_to_fetch_the_paid_video(
    emulator: VeoEmulator, hung_store: Store, prefix: str, capfd: pytest.CaptureFixture[str]
) -> None:
    store = hung_store
    frozen = threading.Event()

    def freeze_once_the_upload_is_open_then_thaw(done: threading.Event) -> None:
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

    result = _generate_while(store, prefix, freeze_once_the_upload_is_open_then_thaw, store.server.resume)
    log = capfd.readouterr().out

    assert frozen.is_set(), (
        "the upload never started an unfinished upload: the store was not failed mid-upload"
    )
    broken = _broken_promises(emulator, store, prefix, result, log)
    _assert_none_broken(broken, log)


def _generate_while(
    store: Store, prefix: str, hang: Callable[[threading.Event], None], thaw: Callable[[], None]
) -> Any:
    """Run the generate DAG into ``store`` while ``hang`` hangs it (in a thread, told by the event
    when the run has ended), then make sure it is thawed whatever happened."""
    done = threading.Event()
    watcher = threading.Thread(target=hang, args=(done,), daemon=True)
    watcher.start()
    prompt = f"A lighthouse in a storm, uploaded to a store that hangs. [emu:bytes={VIDEO_BYTES}]"
    try:
        return run_dag(
            dag_named("veo_objectstore_generate_only"),
            run_conf={"destination": store.uri(prefix), "prompt": prompt},
        )
    finally:
        done.set()
        watcher.join()
        thaw()


def _assert_none_broken(broken: list[str], log: str) -> None:
    """Fail with every broken promise and the task's error lines."""
    errors = "\n".join(line[:400] for line in log.splitlines() if "error" in line.lower())[-3000:]
    assert not broken, "\n".join(broken) + f"\nthe task's errors:\n{errors}"


def _broken_promises(emulator: VeoEmulator, store: Store, prefix: str, result: Any, log: str) -> list[str]:
    """Every promise of a failed upload that does not hold, all at once, so that one run tells all
    that a change fixed or broke."""
    assert result.task("generate_video").state == "failed"
    (job,) = emulator.jobs.values()
    video_key = prefix + video_filename(job.id)
    objects, open_uploads = _settled(store, prefix)
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
    return broken


class StallingProxy:
    """A TCP proxy on loopback in front of the GCS emulator that stops forwarding anything, both ways and
    on every connection (the way a frozen server answers nothing), once ``stall_after`` bytes of requests
    have followed the creation of a resumable upload, until released. It counts the uploads created
    through it: the request line of each creation (``POST .../o?...uploadType=resumable``, without the
    ``upload_id`` that the upload's chunks carry) goes by in the stream it forwards."""

    _CREATE = re.compile(rb"POST /upload/storage/v1/b/[^ ?]+/o\?[^ ]*uploadType=resumable[^ ]* HTTP/1\.1")
    #: The longest request line kept between reads, so one split across two reads is still seen.
    _TAIL = 2048

    def __init__(self, upstream_port: int, stall_after: int) -> None:
        self.upstream_port = upstream_port
        self.stall_after = stall_after
        self.stalled = threading.Event()
        self.creates = 0
        self._after_create = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        ).result(timeout=PROXY_DEADLINE)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=PROXY_DEADLINE)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(PROXY_DEADLINE)

    def release(self) -> None:
        """Forward again whatever was held, as a resumed server answers what was queued."""
        self._loop.call_soon_threadsafe(self._flowing.set)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            self._pump(client_reader, upstream_writer, requests=True),
            self._pump(upstream_reader, client_writer, requests=False),
        )
        self._writers -= {client_writer, upstream_writer}

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, requests: bool
    ) -> None:
        """Copy one direction until it ends; either direction ending closes the connection's other side."""
        tail = b""
        try:
            while data := await source.read(1 << 16):
                await self._flowing.wait()
                if requests:
                    tail = self._watch(tail, data)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    def _watch(self, tail: bytes, data: bytes) -> bytes:
        """Count the creations in ``data`` and the bytes after the first; stall past ``stall_after``."""
        seen = tail + data
        for match in self._CREATE.finditer(seen):
            if match.end() > len(tail) and b"upload_id=" not in match.group():
                self.creates += 1
        if self.creates:
            self._after_create += len(data)
            if self._after_create >= self.stall_after and not self.stalled.is_set():
                self._flowing.clear()
                self.stalled.set()
        return seen[-self._TAIL :]


@pytest.fixture
def stalling_gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, StallingProxy]]:
    """An emulator of this test's own, whose connection reaches it through a :class:`StallingProxy`; the
    store's client reaches it directly, so that it sees the bucket whatever the proxy holds."""
    server = servers.start_gcs(tmp_path)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with StallingProxy(port, GCS_STALL_AFTER) as proxy:
            store = gcs_store(server, "veo_os_gcs_stalled")
            store.connection["extra"]["gcs.endpoint"] = proxy.url
            connect(store, monkeypatch)
            yield store, proxy
    finally:
        server.stop()


def test_gcs_hangs_mid_resumable_upload_leaves_nothing_and_says_how_to_fetch_the_paid_video(
    emulator: VeoEmulator,
    stalling_gcs: tuple[Store, StallingProxy],
    prefix: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    store, proxy = stalling_gcs

    def thaw_after_the_hold(done: threading.Event) -> None:
        # The task's execution_timeout ends the attempt during the hold: the stall began after the task did.
        while not (proxy.stalled.wait(0.1) or done.is_set()):
            pass
        done.wait(HOLD)
        proxy.release()

    result = _generate_while(store, prefix, thaw_after_the_hold, proxy.release)
    log = capfd.readouterr().out

    assert proxy.stalled.is_set(), "the upload never got part-way: the store was not failed mid-upload"
    broken = _broken_promises(emulator, store, prefix, result, log)
    if proxy.creates != 1:
        broken.append(f"the emulator got {proxy.creates} resumable uploads created, not 1")
    _assert_none_broken(broken, log)
