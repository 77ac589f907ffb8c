"""The streaming MP4 check: only a whole file passes, whatever chunks it arrives in."""

from __future__ import annotations

import struct
import time
from importlib import resources
from pathlib import Path

import pytest

from airflow_provider_veo import mp4
from airflow_provider_veo.mp4 import Mp4Error, Mp4Info, Mp4Walker, inspect_file

SAMPLE_PATH = Path(str(resources.files("airflow_provider_veo.testing") / "data" / "sample.mp4"))
SAMPLE = SAMPLE_PATH.read_bytes()


def top_level(data: bytes) -> dict[str, tuple[int, int]]:
    """The sample's top-level boxes (32-bit sizes only): type -> (start, size)."""
    boxes, pos = {}, 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        boxes[kind.decode()] = (pos, size)
        pos += size
    return boxes


BOXES = top_level(SAMPLE)
FTYP = SAMPLE[: BOXES["ftyp"][1]]
MOOV = SAMPLE[BOXES["moov"][0] : sum(BOXES["moov"])]
MDAT = SAMPLE[BOXES["mdat"][0] :]


def box(kind: str, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def large_box(kind: str, payload: bytes) -> bytes:
    """A box in the 64-bit form: size 1, then a ``largesize`` covering the 16-byte header."""
    return struct.pack(">I4sQ", 1, kind.encode(), 16 + len(payload)) + payload


def open_ended_box(kind: str, payload: bytes) -> bytes:
    """A box of size 0: it extends to the end of the file."""
    return struct.pack(">I4s", 0, kind.encode()) + payload


def full_box(kind: str, version: int, body: bytes) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + body)


def mvhd(version: int, timescale: int, duration: int) -> bytes:
    """Creation and modification times, timescale, duration (64-bit times in version 1), 80 more bytes."""
    times = struct.pack(">QQIQ" if version == 1 else ">IIII", 0, 0, timescale, duration)
    return full_box("mvhd", version, times + bytes(80))


def tkhd(version: int, width: float, height: float) -> bytes:
    """Creation, modification, track id, reserved, duration (64-bit times in version 1).

    Then reserved, layer, alternate group, volume, reserved, matrix (52 bytes); width and height in 16.16.
    """
    head = struct.pack(">QQIIQ" if version == 1 else ">IIIII", 0, 0, 1, 0, 0)
    frame = struct.pack(">II", round(width * 65536), round(height * 65536))
    return full_box("tkhd", version, head + bytes(52) + frame)


def trak(handler: str, width: float, height: float, tkhd_version: int = 0) -> bytes:
    hdlr = full_box("hdlr", 0, bytes(4) + handler.encode() + bytes(12) + b"Handler\0")
    return box("trak", tkhd(tkhd_version, width, height) + box("mdia", box("mdhd", bytes(24)) + hdlr))


def walk(data: bytes, chunk: int | None = None) -> Mp4Info:
    walker = Mp4Walker()
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        walker.feed(data[start : start + step])
    return walker.finish()


def test_sample() -> None:
    info = inspect_file(SAMPLE_PATH)
    assert info.duration_seconds == pytest.approx(1.5, abs=0.01)
    assert (info.width, info.height) == (320, 180)
    assert info.boxes[0] == "ftyp"
    assert info.boxes == ("ftyp", "moov", "free", "mdat")  # moov first ("fast start"), 8-byte free pad
    assert info.size == len(SAMPLE)


@pytest.mark.parametrize("chunk", [1, 7, 4096, None])
def test_any_chunking_gives_the_same_info(chunk: int | None) -> None:
    assert walk(SAMPLE, chunk) == inspect_file(SAMPLE_PATH)


def test_memoryview_chunks() -> None:
    walker = Mp4Walker()
    view = memoryview(SAMPLE)
    for start in range(0, len(SAMPLE), 1000):
        walker.feed(view[start : start + 1000])
    assert walker.finish() == inspect_file(SAMPLE_PATH)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (5, "the file ends inside a box header at byte 0: 5 of 8 bytes"),
        (BOXES["ftyp"][1] - 1, "the file ends inside its 'ftyp' box: 31 of 32 bytes"),
        (BOXES["moov"][0] + 3, f"the file ends inside a box header at byte {BOXES['moov'][0]}: 3 of 8 bytes"),
        (BOXES["moov"][0] + 100, f"the file ends inside its 'moov' box: 100 of {BOXES['moov'][1]} bytes"),
        (BOXES["mdat"][0] + 4, f"the file ends inside a box header at byte {BOXES['mdat'][0]}: 4 of 8 bytes"),
        (BOXES["mdat"][0] + 8, f"the file ends inside its 'mdat' box: 8 of {BOXES['mdat'][1]} bytes"),
        (
            len(SAMPLE) - 1,
            f"the file ends inside its 'mdat' box: {BOXES['mdat'][1] - 1} of {BOXES['mdat'][1]}",
        ),
        # Cut cleanly between boxes: only the missing box tells.
        (BOXES["mdat"][0], "no 'mdat' box"),
        (BOXES["free"][0], "no 'mdat' box"),
    ],
)
@pytest.mark.parametrize("chunk", [7, None])
def test_truncated(cut: int, message: str, chunk: int | None) -> None:
    with pytest.raises(Mp4Error, match=message):
        walk(SAMPLE[:cut], chunk)


def test_truncation_is_only_known_at_finish() -> None:
    walker = Mp4Walker()
    walker.feed(SAMPLE[:-1000])
    with pytest.raises(Mp4Error, match="inside its 'mdat' box"):
        walker.finish()


def test_box_overrunning_the_file() -> None:
    start, size = BOXES["mdat"]
    grown = SAMPLE[:start] + struct.pack(">I", size + 10) + SAMPLE[start + 4 :]
    with pytest.raises(Mp4Error, match=f"ends inside its 'mdat' box: {size} of {size + 10} bytes"):
        walk(grown)


def test_trailing_bytes_shorter_than_a_header() -> None:
    with pytest.raises(Mp4Error, match=f"ends inside a box header at byte {len(SAMPLE)}: 5 of 8 bytes"):
        walk(SAMPLE + b"junk!")


def test_trailing_garbage() -> None:
    with pytest.raises(Mp4Error, match="ends inside its '<htm' box: 28 of 4096 bytes"):
        walk(SAMPLE + b"\0\0\x10\0<html>Bad Gateway</html>")


def test_empty() -> None:
    with pytest.raises(Mp4Error, match="the file is empty"):
        walk(b"")


def test_no_moov() -> None:
    with pytest.raises(Mp4Error, match=r"^no 'moov' box$"):
        walk(FTYP + MDAT)


def test_no_mdat() -> None:
    with pytest.raises(Mp4Error, match=r"^no 'mdat' box$"):
        walk(FTYP + MOOV)


def test_no_moov_nor_mdat() -> None:
    with pytest.raises(Mp4Error, match=r"^no 'moov' or 'mdat' box$"):
        walk(FTYP + box("free"))


def test_not_starting_with_ftyp_fails_at_once() -> None:
    walker = Mp4Walker()
    with pytest.raises(Mp4Error, match="does not start with an 'ftyp' box: it starts with b'<!DOCTYP'"):
        walker.feed(b"<!DOCTYPE html><html>Access denied</html>")


def test_ftyp_not_first() -> None:
    with pytest.raises(Mp4Error, match="does not start with an 'ftyp' box"):
        walk(MOOV + FTYP + MDAT)


@pytest.mark.parametrize(
    ("header", "size", "length"),
    [(struct.pack(">I4s", 3, b"free"), 3, 8), (struct.pack(">I4sQ", 1, b"mdat", 15), 15, 16)],
)
def test_size_smaller_than_its_header_fails_at_once(header: bytes, size: int, length: int) -> None:
    walker = Mp4Walker()
    walker.feed(FTYP)
    message = rf"a box header at byte 32 declares size {size}, smaller than its header \({length} bytes\)"
    with pytest.raises(Mp4Error, match=message):
        walker.feed(header + bytes(64))


@pytest.mark.parametrize("chunk", [1, 5, None])
def test_64_bit_largesize_mdat(chunk: int | None) -> None:
    payload = bytes(range(256)) * 16
    info = walk(FTYP + MOOV + large_box("mdat", payload), chunk)
    assert info.boxes == ("ftyp", "moov", "mdat")
    assert info.size == len(FTYP) + len(MOOV) + 16 + len(payload)
    assert (info.width, info.height) == (320, 180)


def test_largesize_counts_its_whole_header() -> None:
    with pytest.raises(Mp4Error, match="ends inside its 'mdat' box: 4111 of 4112 bytes"):
        walk(FTYP + MOOV + large_box("mdat", bytes(4096))[:-1])


def test_size_0_last_box() -> None:
    info = walk(FTYP + MOOV + open_ended_box("mdat", bytes(5000)), 1000)
    assert info.boxes == ("ftyp", "moov", "mdat")
    assert info.size == len(FTYP) + len(MOOV) + 8 + 5000


def test_size_0_box_is_last_by_construction() -> None:
    """A size-0 box that is not last cannot be written: whatever follows its header is its payload.

    So bytes that look like a further box are read as part of it, and the file still passes.
    """
    info = walk(FTYP + MOOV + open_ended_box("mdat", bytes(100)) + box("free", bytes(10)))
    assert info.boxes == ("ftyp", "moov", "mdat")


def test_size_0_moov_is_read_at_the_end() -> None:
    info = walk(FTYP + MDAT + open_ended_box("moov", MOOV[8:]), 100)
    assert info.boxes == ("ftyp", "mdat", "moov")
    assert (info.duration_seconds, info.width, info.height) == (1.5, 320, 180)


def test_mvhd_and_tkhd_version_1() -> None:
    moov = box("moov", mvhd(1, 90_000, 2**33) + trak("vide", 1920, 1080, tkhd_version=1))
    info = walk(FTYP + moov + box("mdat", bytes(10)))
    assert info.duration_seconds == pytest.approx(2**33 / 90_000)
    assert (info.width, info.height) == (1920, 1080)


def test_mvhd_version_0() -> None:
    info = walk(FTYP + box("moov", mvhd(0, 600, 4500)) + box("mdat"))
    assert info.duration_seconds == 7.5
    assert (info.width, info.height) == (None, None)


@pytest.mark.parametrize(("version", "unknown"), [(0, 2**32 - 1), (1, 2**64 - 1)])
def test_unknown_duration(version: int, unknown: int) -> None:
    assert walk(FTYP + box("moov", mvhd(version, 600, unknown)) + box("mdat")).duration_seconds is None


def test_zero_timescale_gives_no_duration() -> None:
    assert walk(FTYP + box("moov", mvhd(0, 0, 4500)) + box("mdat")).duration_seconds is None


def test_first_video_track_gives_the_frame() -> None:
    moov = box(
        "moov",
        mvhd(0, 1000, 8000) + trak("soun", 0, 0) + trak("vide", 1279.75, 720.25) + trak("vide", 640, 360),
    )
    info = walk(FTYP + moov + box("mdat"))
    assert (info.width, info.height) == (1280, 720)


def test_second_moov() -> None:
    with pytest.raises(Mp4Error, match=f"a second 'moov' box at byte {len(FTYP) + len(MOOV)}"):
        walk(FTYP + MOOV + MOOV + MDAT)


def test_moov_child_overrunning_moov() -> None:
    bad = box("moov", struct.pack(">I4s", 500, b"trak") + bytes(20))
    with pytest.raises(Mp4Error, match="the 'trak' box at byte 40 inside 'moov' declares size 500"):
        walk(FTYP + bad + box("mdat"))


def test_short_mvhd() -> None:
    with pytest.raises(Mp4Error, match="the 'mvhd' box at byte 40 is too short"):
        walk(FTYP + box("moov", full_box("mvhd", 0, bytes(8))) + box("mdat"))


def test_moov_over_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mp4, "MAX_MOOV_BYTES", 1000)
    walker = Mp4Walker()
    with pytest.raises(Mp4Error, match="the 'moov' box is larger than the 1000 bytes this reads"):
        walker.feed(FTYP + MOOV)


def test_too_many_top_level_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mp4, "MAX_TOP_LEVEL_BOXES", 5)
    walk(FTYP + MOOV + box("free") * 2 + MDAT)
    with pytest.raises(Mp4Error, match="more than 5 top-level boxes"):
        walk(FTYP + MOOV + box("free") * 3 + MDAT)


def test_a_gibibyte_mdat_is_counted_not_read() -> None:
    """1 GiB in 1 MiB chunks: payloads are jumped over, so this takes milliseconds, not minutes."""
    chunk = bytes(mp4.CHUNK_BYTES)
    walker = Mp4Walker()
    walker.feed(FTYP + MOOV + struct.pack(">I4s", 8 + 1024 * len(chunk), b"mdat"))
    started = time.perf_counter()
    for _ in range(1024):
        walker.feed(chunk)
    assert time.perf_counter() - started < 5
    assert walker.finish().size == len(FTYP) + len(MOOV) + 8 + 2**30
