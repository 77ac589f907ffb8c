"""Check, as a download streams past, that its bytes make a whole MP4 (ISO base media file format).

A chunked body without ``Content-Length`` that the server ends cleanly but early looks like a finished
download; only the MP4's own box sizes show it is cut short, so such a file must never be published.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Bytes read at a time by :func:`inspect_file`, as the download reads them.
CHUNK_BYTES = 1024 * 1024
#: The most of a ``moov`` box held in memory; even a long video's is a few MB.
MAX_MOOV_BYTES = 64 * 1024 * 1024
#: The most top-level boxes a file may have, so their list stays small; a plain MP4 has a handful,
#: a fragmented one two per fragment.
MAX_TOP_LEVEL_BOXES = 100_000

_REQUIRED_BOXES = ("ftyp", "moov", "mdat")
_HEADER = struct.Struct(">I4s")  # 32-bit size (header included), type
_LARGESIZE = struct.Struct(">Q")  # follows a header whose size is 1
_VERSION = struct.Struct(">B")  # of a "full box": its payload starts with version and 24-bit flags
_MVHD_V0 = struct.Struct(">II")  # timescale, duration
_MVHD_V1 = struct.Struct(">IQ")
_TKHD_SIZE = struct.Struct(">II")  # width, height: 16.16 fixed point
_HANDLER = struct.Struct(">4s")


class Mp4Error(ValueError):
    """The bytes are not a whole MP4; the message says what is wrong."""


@dataclass(frozen=True)
class Mp4Info:
    """What a whole MP4 says about itself."""

    #: The movie's duration (``mvhd``), or None when it has no ``mvhd`` or gives no duration.
    duration_seconds: float | None
    #: The frame size of the first video track (``tkhd``), or None without a video track.
    width: int | None
    height: int | None
    #: The top-level box types in file order, e.g. ``("ftyp", "moov", "free", "mdat")``.
    boxes: tuple[str, ...]
    #: The file's length in bytes.
    size: int


class Mp4Walker:
    """Follow the top-level boxes of an MP4 fed chunk by chunk, without holding it in memory.

    Each box header gives the box's size, so payloads are skipped by counting; only ``moov`` is kept
    (up to :data:`MAX_MOOV_BYTES`) and read once whole. :meth:`feed` raises :class:`Mp4Error` as soon
    as the structure is impossible; :meth:`finish` raises it for a file that ends early or lacks a box.
    After an :class:`Mp4Error` the walker is spent.
    """

    def __init__(self) -> None:
        self._offset = 0  # bytes fed before the current chunk
        self._header = bytearray()  # the part read so far of the next box's header
        self._box = ""  # the current top-level box's type
        self._box_start = 0  # the byte where its header starts
        self._box_size = 0  # its declared size, header included
        self._left = 0  # its bytes still to come
        self._to_end = False  # it has size 0: it extends to the end of the file
        self._boxes: list[str] = []
        self._moov: bytearray | None = None  # the payload of the moov box being read
        self._moov_at = 0  # the byte where that payload starts
        self._movie: tuple[float | None, int | None, int | None] | None = None  # from the moov box

    def feed(self, chunk: bytes | memoryview) -> None:
        """Take the next bytes of the file."""
        view = memoryview(chunk).cast("B")
        pos, end = 0, len(view)
        while pos < end:
            if not self._left and not self._to_end:
                pos = self._read_header(view, pos)
            else:
                take = end - pos if self._to_end else min(self._left, end - pos)
                if self._moov is not None:
                    self._keep_moov(view[pos : pos + take])
                if not self._to_end:
                    self._left -= take
                pos += take
            if self._moov is not None and not self._left and not self._to_end:
                self._close_moov()
        self._offset += end

    def finish(self) -> Mp4Info:
        """Describe the whole file, or raise :class:`Mp4Error` saying why it is not a whole MP4."""
        if self._header:
            raise Mp4Error(
                f"the file ends inside a box header at byte {self._box_start}: "
                f"{len(self._header)} of {self._header_length()} bytes"
            )
        if self._left:
            raise Mp4Error(
                f"the file ends inside its '{self._box}' box: "
                f"{self._box_size - self._left} of {self._box_size} bytes"
            )
        if self._moov is not None:  # a size-0 moov, ended by the end of the file
            self._close_moov()
        if not self._boxes:
            raise Mp4Error("the file is empty")
        missing = [kind for kind in _REQUIRED_BOXES if kind not in self._boxes]
        if missing:
            raise Mp4Error("no " + " or ".join(f"'{kind}'" for kind in missing) + " box")
        assert self._movie is not None  # a moov box was seen and is closed
        duration, width, height = self._movie
        return Mp4Info(duration, width, height, tuple(self._boxes), self._offset)

    def _header_length(self) -> int:
        """8 bytes, or 16 once the header read so far says size 1 (a 64-bit ``largesize`` follows)."""
        return 16 if self._header[:4] == b"\0\0\0\1" else 8

    def _read_header(self, view: memoryview, pos: int) -> int:
        """Add to the next box's header from ``view[pos:]``; start the box once it is whole."""
        if not self._header:
            self._box_start = self._offset + pos
        take = min(self._header_length() - len(self._header), len(view) - pos)
        self._header += view[pos : pos + take]
        if len(self._header) == self._header_length():
            self._start_box()
        return pos + take

    def _start_box(self) -> None:
        size, raw = _HEADER.unpack_from(self._header)
        kind = _box_name(raw)
        if not self._boxes and kind != "ftyp":
            raise Mp4Error(
                f"the file does not start with an 'ftyp' box: it starts with {bytes(self._header)!r}"
            )
        length = len(self._header)
        if length == 16:
            (size,) = _LARGESIZE.unpack_from(self._header, 8)
        self._header.clear()
        if size and size < length:
            raise Mp4Error(
                f"a box header at byte {self._box_start} declares size {size}, "
                f"smaller than its header ({length} bytes)"
            )
        if len(self._boxes) == MAX_TOP_LEVEL_BOXES:
            raise Mp4Error(f"the file has more than {MAX_TOP_LEVEL_BOXES} top-level boxes")
        if kind == "moov":
            if self._movie is not None:
                raise Mp4Error(f"a second 'moov' box at byte {self._box_start}")
            self._moov, self._moov_at = bytearray(), self._box_start + length
        self._boxes.append(kind)
        self._box, self._box_size = kind, size
        self._to_end = size == 0  # nothing can follow it: any further bytes are its own
        self._left = size - length if size else 0

    def _keep_moov(self, part: memoryview) -> None:
        assert self._moov is not None
        if len(self._moov) + len(part) > MAX_MOOV_BYTES:
            raise Mp4Error(f"the 'moov' box is larger than the {MAX_MOOV_BYTES} bytes this reads")
        self._moov += part

    def _close_moov(self) -> None:
        assert self._moov is not None
        self._movie = _read_moov(memoryview(self._moov), self._moov_at)
        self._moov = None


def inspect_file(path: str | os.PathLike[str]) -> Mp4Info:
    """Walk a file on disk as a download does; raise :class:`Mp4Error` unless it is a whole MP4."""
    walker = Mp4Walker()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            walker.feed(chunk)
    return walker.finish()


def _box_name(raw: bytes) -> str:
    """A box type as text, with bytes that are not printable escaped (``\\x00``)."""
    return raw.decode("latin-1").encode("unicode_escape").decode("ascii")


def _children(data: memoryview, at: int, parent: str) -> Iterator[tuple[str, memoryview, int, int]]:
    """The boxes in a container's payload ``data``, which starts at byte ``at``.

    Each as its type, its payload, the byte where its header starts and the byte where its payload does.
    """
    pos = 0
    while pos < len(data):
        where = at + pos
        if len(data) - pos < _HEADER.size:
            raise Mp4Error(f"the '{parent}' box ends with {len(data) - pos} stray bytes at byte {where}")
        size, raw = _HEADER.unpack_from(data, pos)
        length = _HEADER.size
        if size == 1 and len(data) - pos >= 16:
            (size,) = _LARGESIZE.unpack_from(data, pos + 8)
            length = 16
        kind = _box_name(raw)
        if not length <= size <= len(data) - pos:
            raise Mp4Error(
                f"the '{kind}' box at byte {where} inside '{parent}' declares size {size}, "
                f"which does not fit in the {len(data) - pos} bytes left"
            )
        yield kind, data[pos + length : pos + size], where, where + length
        pos += size


def _field(layout: struct.Struct, payload: memoryview, offset: int, kind: str, where: int) -> tuple[Any, ...]:
    try:
        return layout.unpack_from(payload, offset)
    except struct.error:
        raise Mp4Error(f"the '{kind}' box at byte {where} is too short ({len(payload)} bytes)") from None


def _read_moov(moov: memoryview, at: int) -> tuple[float | None, int | None, int | None]:
    """Duration (``mvhd``) and the first video track's width and height from a ``moov`` payload."""
    duration: float | None = None
    frame: tuple[int, int] | None = None
    for kind, payload, where, inside in _children(moov, at, "moov"):
        if kind == "mvhd":
            duration = _movie_duration(payload, where)
        elif kind == "trak" and frame is None:
            frame = _video_frame(payload, inside)
    return (duration, *frame) if frame else (duration, None, None)


def _movie_duration(mvhd: memoryview, where: int) -> float | None:
    """Seconds from ``mvhd``: version 1 has 64-bit times, version 0 32-bit ones; all ones means unknown."""
    if _field(_VERSION, mvhd, 0, "mvhd", where)[0] == 1:
        timescale, duration = _field(_MVHD_V1, mvhd, 20, "mvhd", where)
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        timescale, duration = _field(_MVHD_V0, mvhd, 12, "mvhd", where)
        unknown = 0xFFFFFFFF
    return duration / timescale if timescale and duration != unknown else None


def _video_frame(trak: memoryview, at: int) -> tuple[int, int] | None:
    """Width and height from a ``trak``'s ``tkhd`` when its ``mdia/hdlr`` says it is video, else None.

    ``tkhd`` version 1 has 64-bit times, version 0 32-bit ones, before the same fields.
    """
    frame: tuple[int, int] | None = None
    handler = b""
    for kind, payload, where, inside in _children(trak, at, "trak"):
        if kind == "tkhd":
            wide = _field(_VERSION, payload, 0, "tkhd", where)[0] == 1
            width, height = _field(_TKHD_SIZE, payload, 88 if wide else 76, "tkhd", where)
            frame = round(width / 65536), round(height / 65536)
        elif kind == "mdia":
            for inner, body, spot, _ in _children(payload, inside, "mdia"):
                if inner == "hdlr":
                    (handler,) = _field(_HANDLER, body, 8, "hdlr", spot)
    return frame if handler == b"vide" else None
