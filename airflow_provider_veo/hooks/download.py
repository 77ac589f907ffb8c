"""Stream a video into its staged file at the network's pace, hashing and checking every byte.

One thread receives: each ``read`` of the body lands in a fresh chunk, straight from the socket (no
decoding, no re-buffering, unless the server compressed the body). Another thread hashes the chunk
(SHA-256), follows its MP4 boxes and writes it; both release the GIL for the heavy part (``recv``,
``sha256``, ``write``), so receiving overlaps hashing and writing instead of waiting for them.
At most :data:`PIPELINE_DEPTH` chunks wait between the two: memory stays flat whatever the video
weighs. The file is published (fsync, then rename or upload) only once its size matches
``Content-Length`` and its boxes make a whole MP4.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import requests
import urllib3

from airflow_provider_veo.api import DOWNLOAD_CHUNK_BYTES, VeoDownloadError
from airflow_provider_veo.mp4 import Mp4Error, Mp4Info, Mp4Walker

if TYPE_CHECKING:
    from airflow_provider_veo.destinations import Destination

#: Chunks received but not yet written: with 1 MiB chunks, at most this many MiB plus two wait in memory.
PIPELINE_DEPTH = 4

_DONE = b""  # the receiver's last word to the writer: the body has ended (or broken off)


@dataclass(frozen=True)
class Written:
    """What one verified download put at the destination."""

    uri: str
    size: int
    sha256: str
    content_type: str
    mp4: Mp4Info


class _Writer(threading.Thread):
    """Hashes, walks and writes the chunks it is handed, in order, on its own thread.

    The first error (a full disk, bytes that cannot be an MP4) is kept; the chunks after it are
    dropped, so the receiver is never blocked by a writer that has given up. It checks :attr:`error`
    between chunks and stops.
    """

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__(name="veo-download-writer", daemon=True)
        self.chunks: queue.Queue[bytes] = queue.Queue(PIPELINE_DEPTH)
        self.digest = hashlib.sha256()
        self.walker = Mp4Walker()
        self.size = 0
        self.error: OSError | Mp4Error | None = None
        self._sink = sink

    def run(self) -> None:
        get, digest, walker, write = self.chunks.get, self.digest, self.walker, self._sink.write
        while chunk := get():
            if self.error is not None:
                continue
            try:
                digest.update(chunk)
                walker.feed(chunk)
                write(chunk)
            except (OSError, Mp4Error) as exc:
                self.error = exc
                continue
            self.size += len(chunk)

    def finish(self) -> None:
        """Wait until every chunk handed over is written (or dropped after an error)."""
        self.chunks.put(_DONE)
        self.join()


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


def receive(response: requests.Response, target: Destination) -> Written:
    """Stream ``response``'s body into ``target`` and publish it only once it is verified whole."""
    staged = target.stage()
    with response, staged as sink:
        expected = response.headers.get("Content-Length")
        writer = _Writer(sink)
        writer.start()
        received = 0
        try:
            try:
                for chunk in _body_chunks(response):
                    received += len(chunk)
                    writer.chunks.put(chunk)
                    if writer.error is not None:
                        break
            finally:
                writer.finish()
            if isinstance(writer.error, OSError):  # a full disk: not something another attempt mends
                raise target.write_error(writer.error) from writer.error
            if writer.error is not None:
                raise writer.error
            size = writer.size
            if expected is not None and expected.isdigit() and int(expected) != size:
                raise VeoDownloadError(f"the download is truncated: {size} of {expected} bytes")
            info = writer.walker.finish()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise VeoDownloadError(
                f"the download broke off after {received} of {expected or 'unknown'} bytes "
                f"({type(exc).__name__})"
            ) from exc
        except Mp4Error as exc:
            raise VeoDownloadError(f"the download is not a whole MP4 ({received} bytes): {exc}") from exc
        staged.publish()
    return Written(
        uri=staged.uri,
        size=size,
        sha256=writer.digest.hexdigest(),
        content_type=response.headers.get("Content-Type", "video/mp4").split(";")[0],
        mp4=info,
    )
