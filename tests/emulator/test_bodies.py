"""Generated video bodies are structurally valid MP4s, and the size and digest helpers match them."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_veo.testing import SAMPLE_MP4, Scenario, VeoEmulator
from airflow_provider_veo.testing.emulator import FTYP_HEADER, expected_sha256
from airflow_provider_veo.testing.emulator.bodies import MIN_VIDEO_BYTES, Clip, video_chunks

from .client import AUTH, created_id, get, inspect_bytes, served_clip

SAMPLE = SAMPLE_MP4.read_bytes()


def top_level_boxes(head: bytes, total: int) -> list[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of each top-level box of a ``total``-byte file whose first bytes are
    ``head``; the walk needs only the box headers, so ``head`` may stop inside the last box."""
    boxes, offset = [], 0
    while offset < total:
        size, kind = struct.unpack_from(">I4s", head, offset)
        if size == 1:
            (size,) = struct.unpack_from(">Q", head, offset + 8)
        assert size >= 8, (kind, offset, size)
        boxes.append((kind, offset, size))
        offset += size
    assert offset == total, "the boxes overrun the file"
    return boxes


@pytest.fixture(params=["docs", "new-api"])
def emu(request: pytest.FixtureRequest) -> Iterator[VeoEmulator]:
    with VeoEmulator(server=request.param) as emulator:
        yield emulator


def test_the_sample_is_the_model_of_a_generated_body() -> None:
    kinds = [kind for kind, _, _ in top_level_boxes(SAMPLE, len(SAMPLE))]
    assert kinds == [b"ftyp", b"moov", b"free", b"mdat"] and SAMPLE.startswith(FTYP_HEADER)


@pytest.mark.parametrize("size", [MIN_VIDEO_BYTES, MIN_VIDEO_BYTES + 1, 1024 * 1024, 3 * 1024 * 1024 + 123])
def test_served_bodies_tile_ftyp_moov_mdat_and_match_the_helpers(emu: VeoEmulator, size: int) -> None:
    emu.scenario = Scenario(polls_until_done=0, video_bytes=size)
    video_id = created_id(emu)
    video_url = get(emu, video_id).json().get("video_url")
    headers = AUTH if emu.server == "new-api" else {}
    for body in (
        requests.get(video_url, headers=headers, timeout=10).content,
        get(emu, video_id, "/content").content,
    ):
        assert len(body) == size == emu.expected_bytes(video_id)
        job = emu.jobs[video_id]
        digest = expected_sha256(size, Clip.of(job.seconds, job.size))
        assert hashlib.sha256(body).hexdigest() == emu.expected_sha256(video_id) == digest
        boxes = top_level_boxes(body, len(body))
        assert [kind for kind, _, _ in boxes] == [b"ftyp", b"moov", b"mdat"]
        mdat = boxes[2][1]
        assert body[:mdat] == served_clip(emu, video_id)[:mdat]  # The clip's own ftyp and moov.


@pytest.mark.parametrize(
    ("model", "fields", "clip"),
    [
        ("veo3.1-fast", {"seconds": "4"}, (4.0, 1280, 720)),
        ("veo3.1-fast", {"seconds": "6", "size": "720x1280"}, (6.0, 720, 1280)),
        ("veo3.1", {"seconds": "8", "size": "3840x2160"}, (8.0, 3840, 2160)),
        ("veo3.1", {"seconds": "8", "size": "9x16"}, (8.0, 720, 1280)),  # an orientation hint: 720p that way
        ("veo3-pro", {"size": "16x9"}, (8.0, 1280, 720)),
    ],
)
@pytest.mark.parametrize("video_bytes", [None, 2 * 1024 * 1024])
def test_a_served_body_says_the_jobs_seconds_and_size(
    emu: VeoEmulator,
    model: str,
    fields: dict[str, str],
    clip: tuple[float, int, int],
    video_bytes: int | None,
) -> None:
    """What the provider reads from the MP4 is what was asked: no "lasts 1.50 s" warning on a happy path."""
    emu.scenario = Scenario(polls_until_done=0, video_bytes=video_bytes)
    video_id = created_id(emu, model=model, **fields)
    get(emu, video_id)
    body = get(emu, video_id, "/content").content
    info = inspect_bytes(body)
    assert (info.duration_seconds, info.width, info.height) == clip
    assert len(body) == emu.expected_bytes(video_id) == (video_bytes or len(SAMPLE))
    assert hashlib.sha256(body).hexdigest() == emu.expected_sha256(video_id)
    # Only the movie header differs from the sample: the pictures are the sample's.
    moov_end = next(
        offset + size for kind, offset, size in top_level_boxes(body, len(body)) if kind == b"moov"
    )
    assert body[moov_end : moov_end + 4096] == next(video_chunks(video_bytes))[moov_end : moov_end + 4096]
    assert sum(a != b for a, b in zip(body[:moov_end], SAMPLE[:moov_end], strict=True)) < 40


def test_a_body_over_4_gib_uses_a_64_bit_mdat_size() -> None:
    size = 5 * 1024**3 + 7
    head = bytes(next(video_chunks(size)))
    (kind, offset, mdat), *_ = reversed(top_level_boxes(head, size))
    assert kind == b"mdat" and offset + mdat == size and mdat > 0xFFFFFFFF
    assert struct.unpack_from(">I4sQ", head, offset) == (1, b"mdat", mdat)


def test_a_corrupt_generated_body_loses_only_its_ftyp_header(emu: VeoEmulator) -> None:
    size = 2 * 1024 * 1024
    emu.scenario = Scenario(polls_until_done=0, video_bytes=size, corrupt_download=True)
    video_id = created_id(emu)
    get(emu, video_id)
    body = get(emu, video_id, "/content").content
    job = emu.jobs[video_id]
    whole = b"".join(bytes(chunk) for chunk in video_chunks(size, Clip.of(job.seconds, job.size)))
    assert len(body) == size and body[:32] == bytes(32) and body[32:] == whole[32:]


def test_a_truncated_generated_body_announces_its_full_length(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=0, video_bytes=2 * 1024 * 1024, truncate_download=True)
    video_id = created_id(emu)
    response = requests.get(
        get(emu, video_id).json()["video_url"],
        headers=AUTH if emu.server == "new-api" else {},
        timeout=10,
        stream=True,
    )
    if emu.server == "docs":
        assert int(response.headers["Content-Length"]) == 2 * 1024 * 1024
    received = 0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(65536):
            received += len(chunk)
    assert received == 1024 * 1024


def test_a_body_smaller_than_its_boxes_is_refused() -> None:
    with pytest.raises(ValueError, match="video_bytes must be at least"):
        Scenario(video_bytes=MIN_VIDEO_BYTES - 1)
    with pytest.raises(ValueError, match="content_cut_at"):
        Scenario(content_cut_at=-1)
