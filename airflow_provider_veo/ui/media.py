"""Reading a recorded video back for the browser: a local file or an object, whole or by byte range.

A location is opened only after it passes :func:`check`: it still holds an MP4 of the size the task
recorded. That keeps a forged result (an XCom edited through the REST API to name another file)
from turning the view into a reader of any file the api-server can see.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from starlette.responses import FileResponse, Response, StreamingResponse

from airflow_provider_veo.api.results import StoredVideo
from airflow_provider_veo.destinations import LocalDestination, ObjectStoreDestination, parse_destination

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

#: How much of an object is read from the store per chunk sent to the browser.
CHUNK_BYTES = 1024 * 1024
#: ``bytes=first-last``, ``bytes=first-`` or ``bytes=-suffix``: one range (what players send).
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

Availability = Literal["available", "missing", "changed", "unreachable"]


@dataclass(frozen=True)
class Check:
    """What the recorded location holds now."""

    availability: Availability
    #: Why it cannot be played, in a sentence for the page (empty when available).
    reason: str = ""


@dataclass(frozen=True)
class StoredObject:
    """A file in an object store: the filesystem Airflow gives for its scheme and connection, and
    the path that filesystem takes."""

    fs: AbstractFileSystem
    path: str
    name: str


def location(video: StoredVideo) -> Path | StoredObject:
    """Where the task wrote the video, read from its ``uri`` as the operators parse a destination
    (a local path, or ``scheme://[conn_id@]bucket/key`` and Azure's account-qualified form)."""
    destination = parse_destination(video["uri"])
    if isinstance(destination, LocalDestination):
        return destination.path
    assert isinstance(destination, ObjectStoreDestination)
    fs = destination.filesystem(field="uri")
    return StoredObject(fs, destination._fs_path(fs, destination.key), destination.name)


def _size(where: Path | StoredObject) -> int | None:
    """The size in bytes, or ``None`` when nothing (or a folder) is there."""
    if isinstance(where, Path):
        try:
            found = os.stat(where)
        except FileNotFoundError:
            return None
        return found.st_size if stat.S_ISREG(found.st_mode) else None
    if not where.fs.isfile(where.path):
        return None
    return int(where.fs.size(where.path))


def _head(where: Path | StoredObject) -> bytes:
    """The first 8 bytes: an object store is asked for just those (one small ranged read)."""
    if isinstance(where, Path):
        with where.open("rb") as source:
            return source.read(8)
    return bytes(where.fs.cat_file(where.path, start=0, end=8))


def check(video: StoredVideo) -> Check:
    """Whether the recorded location still holds the video: there, the recorded size, an MP4."""
    try:
        where = location(video)
        size = _size(where)
        if size is None:
            return Check("missing", "The recorded file no longer exists.")
        if size != video["bytes"]:
            return Check(
                "changed",
                f"The file there has changed since it was recorded ({size} bytes, not {video['bytes']}).",
            )
        if _head(where)[4:8] != b"ftyp":
            return Check("changed", "The file there is no longer an MP4.")
    except Exception as exc:  # OSError, or an object store client's own (credentials, network)
        return Check("unreachable", f"The store could not be read: {type(exc).__name__}.")
    return Check("available")


def response(
    video: StoredVideo, *, range_header: str | None, if_range: str | None, download: bool
) -> Response:
    """The video as an HTTP response: 200 whole, 206 for one satisfiable range, 416 otherwise.

    Local files go through Starlette's :class:`~starlette.responses.FileResponse`; objects are
    streamed from the store in :data:`CHUNK_BYTES` reads, in the api-server's thread pool. The
    ETag is the recorded sha256, so a browser's ``If-Range`` works for both.
    """
    where = location(video)
    filename = where.name or f"{video['video_id']}.mp4"
    etag = f'"{video["sha256"]}"'
    disposition: Literal["attachment", "inline"] = "attachment" if download else "inline"
    headers = {"etag": etag, "cache-control": "private, no-cache", "x-content-type-options": "nosniff"}
    if isinstance(where, Path):
        return FileResponse(
            where,
            media_type="video/mp4",
            filename=filename,
            content_disposition_type=disposition,
            headers=headers,
        )
    return _object_response(
        where,
        video["bytes"],
        None if if_range not in (None, etag) else range_header,
        {**headers, "content-disposition": _disposition(disposition, filename)},
    )


def _disposition(kind: str, filename: str) -> str:
    return f"{kind}; filename*=utf-8''{quote(filename)}"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte asked for, ``None`` for the whole file (no range, several, or one
    that is malformed: RFC 9110 lets a server ignore those).

    Raises :class:`ValueError` for a range that starts past the end (answered with 416).
    """
    match = _SINGLE_RANGE.fullmatch((header or "").replace(" ", ""))
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # the last N bytes
        start = max(size - int(last), 0)
        if int(last) == 0 or size == 0:
            raise ValueError(header)
        return start, size - 1
    start, end = int(first), min(int(last) if last else size - 1, size - 1)
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError(header)
    return start, end


def _object_response(
    where: StoredObject, size: int, range_header: str | None, headers: dict[str, str]
) -> Response:
    headers = {**headers, "accept-ranges": "bytes"}
    try:
        span = byte_range(range_header, size)
    except ValueError:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    start, end = span or (0, size - 1)
    headers["content-length"] = str(end - start + 1)
    if span is not None:
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _read(where, start, end - start + 1),
        status_code=206 if span is not None else 200,
        media_type="video/mp4",
        headers=headers,
    )


def _read(where: StoredObject, start: int, length: int) -> Iterator[bytes]:
    with where.fs.open(where.path, "rb", block_size=CHUNK_BYTES) as source:
        source.seek(start)
        while length > 0:
            chunk = source.read(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
