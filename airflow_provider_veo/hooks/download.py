"""Stream a video into its staged file at the network's pace, hashing and checking every byte, within bounds.

The calling thread receives and writes: each ``read`` of the body lands in a fresh chunk, straight
from the socket (no decoding, no re-buffering, unless the server compressed the body), and goes to
the staged file at once. Another thread hashes the chunk (SHA-256) and follows its MP4 boxes. Each
side releases the GIL for its heavy part (``recv`` and ``write``; ``sha256``), and the two weigh
about the same, so hashing overlaps the network and the disk instead of waiting for them. At most
:data:`PIPELINE_DEPTH` chunks wait between the two: memory stays flat whatever the video weighs.
The file is published (fsync, then rename or upload) only once its size matches ``Content-Length``
and its boxes make a whole MP4.

Every download is bounded (:class:`Bounds`): a deadline for the whole of it, which a server sending
one byte a second cannot escape (a per-read timeout never fires then), and a size cap, checked
against ``Content-Length`` before anything is written and against the bytes received when there is
none. Before writing, the file system must have room for the announced length.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3

from airflow_provider_veo.api import DOWNLOAD_CHUNK_BYTES, VeoDownloadError, VeoInputError
from airflow_provider_veo.mp4 import Mp4Error, Mp4Info, Mp4Walker

if TYPE_CHECKING:
    from airflow_provider_veo.destinations import Destination
    from airflow_provider_veo.hooks.settings import Settings

#: Chunks received but not yet hashed: with 1 MiB chunks, at most this many MiB plus two wait in memory.
PIPELINE_DEPTH = 4

_DONE = b""  # the receiver's last word to the hasher: the body has ended (or broken off)


@dataclass(frozen=True)
class Bounds:
    """How long one download may take and how large it may be (the connection's ``download_timeout``
    and ``max_download_bytes``); the deadline covers every attempt at fetching the video."""

    seconds: float
    max_bytes: int
    deadline: float  # on the time.monotonic() clock

    @classmethod
    def starting_now(cls, settings: Settings) -> Bounds:
        return cls(
            settings.download_timeout,
            settings.max_download_bytes,
            time.monotonic() + settings.download_timeout,
        )

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.deadline

    def late(self, received: int) -> VeoDownloadError:
        """The (retryable) error of a download the deadline ended."""
        return VeoDownloadError(
            f"the download did not finish within download_timeout ({self.seconds:g} s): the server sent "
            f"{received} bytes in that time"
        )

    def too_large(self, what: str) -> VeoInputError:
        """The error of a video over the cap: another attempt would meet the same file."""
        return VeoInputError(
            "max_download_bytes",
            f"the video {what}, more than the connection's max_download_bytes ({self.max_bytes}); "
            "nothing was kept. Raise max_download_bytes in the connection's extra if it should be accepted",
        )


@dataclass(frozen=True)
class Written:
    """What one verified download put at the destination."""

    uri: str
    size: int
    sha256: str
    content_type: str
    mp4: Mp4Info


def source_of(url: str) -> str:
    """``url`` fit for a log line: scheme, host, port and path, without the query of a signed URL
    (its signature) nor any user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


class _Hasher(threading.Thread):
    """Hashes and walks the chunks it is handed, in order, on its own thread, and keeps the deadline.

    The first :class:`Mp4Error` (bytes that cannot be an MP4) is kept; the chunks after it are
    dropped, so the receiver is never blocked by a hasher that has given up. The receiver checks
    :attr:`error` between chunks and stops.

    The deadline is kept here rather than by a timer thread of its own, so a download starts one
    thread, not two: waiting for its next chunk, this thread wakes at the deadline and shuts the
    connection's socket down, which ends a blocked read. A per-read timeout never fires while a
    server sends a byte now and then; this does. :attr:`fired` says whether it did, so the error the
    read then raises (or the early end) is reported as the deadline.
    """

    def __init__(self, response: requests.Response, deadline: float) -> None:
        super().__init__(name="veo-download-hasher", daemon=True)
        self.chunks: queue.Queue[bytes] = queue.Queue(PIPELINE_DEPTH)
        self.digest = hashlib.sha256()
        self.walker = Mp4Walker()
        self.error: Mp4Error | None = None
        self.fired = False
        self._response = response
        self._deadline = deadline

    def run(self) -> None:
        get, digest, walker, deadline = self.chunks.get, self.digest, self.walker, self._deadline
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and not self.fired:
                self._end_body()  # checked before each chunk too: a fast server never lets the wait time out
            try:
                chunk = get() if self.fired else get(timeout=left)
            except queue.Empty:
                continue  # the deadline has come: the next turn ends the body
            if not chunk:
                return
            if self.error is not None:
                continue
            digest.update(chunk)
            try:
                walker.feed(chunk)
            except Mp4Error as exc:
                self.error = exc

    def finish(self) -> None:
        """Wait until every chunk handed over is hashed (or dropped after an error)."""
        self.chunks.put(_DONE)
        self.join()

    def _end_body(self) -> None:
        self.fired = True
        connection = getattr(self._response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed: the read has ended anyway
                sock.shutdown(socket.SHUT_RDWR)


def _body_chunks(response: requests.Response) -> Any:
    """The body's chunks as they arrive, each read straight from the socket into a new ``bytes``.

    ``raw.read(n, decode_content=False)`` skips urllib3's decoded-bytes buffer, which costs a copy
    and a list of pieces per chunk; a compressed body (no CDN compresses an MP4, but a proxy may) is
    decoded as ``iter_content`` would.
    """
    raw = response.raw
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decode = encoding not in ("", "identity")
    while chunk := raw.read(DOWNLOAD_CHUNK_BYTES, decode_content=decode):
        yield chunk


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _check_room(sink: IO[bytes], size: int, target: Destination) -> None:
    """Refuse, before writing, a video the staged file's file system has no room for."""
    stats = os.fstatvfs(sink.fileno())
    free = stats.f_bavail * stats.f_frsize
    if free < size:
        problem = OSError(
            errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {free} bytes free, the video announces {size}"
        )
        raise target.write_error(problem)


def receive(response: requests.Response, target: Destination, bounds: Bounds) -> Written:
    """Stream ``response``'s body into ``target`` within ``bounds``; publish it only once verified whole."""
    with response:
        expected = _content_length(response)
        if expected is not None and expected > bounds.max_bytes:
            raise bounds.too_large(f"announces {expected} bytes (Content-Length)")
        staged = target.stage()
        with staged as sink:
            if expected is not None:
                _check_room(sink, expected, target)
            hasher = _Hasher(response, bounds.deadline)
            hasher.start()
            received = 0
            try:
                try:
                    for chunk in _body_chunks(response):
                        received += len(chunk)
                        if received > bounds.max_bytes:
                            raise bounds.too_large(f"goes on past {bounds.max_bytes} bytes")
                        try:
                            sink.write(chunk)
                        except OSError as exc:  # a full disk: not something another attempt mends
                            raise target.write_error(exc) from exc
                        hasher.chunks.put(chunk)
                        if hasher.error is not None:
                            break
                finally:
                    hasher.finish()
                if hasher.fired:
                    raise bounds.late(received)
                if hasher.error is not None:
                    raise hasher.error
                if expected is not None and expected != received:
                    raise VeoDownloadError(f"the download is truncated: {received} of {expected} bytes")
                info = hasher.walker.finish()
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if hasher.fired:
                    raise bounds.late(received) from exc
                raise VeoDownloadError(
                    f"the download broke off after {received} of {expected or 'unknown'} bytes "
                    f"({type(exc).__name__})"
                ) from exc
            except Mp4Error as exc:
                raise VeoDownloadError(f"the download is not a whole MP4 ({received} bytes): {exc}") from exc
            staged.publish()
    return Written(
        uri=staged.uri,
        size=received,
        sha256=hasher.digest.hexdigest(),
        content_type=response.headers.get("Content-Type", "video/mp4").split(";")[0],
        mp4=info,
    )
