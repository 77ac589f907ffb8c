"""What the emulator sends: video bodies (the sample clip or a generated one) and error bodies.

Large bodies are generated block by block from one deterministic random block, so a multi-gigabyte
download costs neither memory nor CPU here, and its digest can be computed without serving it.
"""

from __future__ import annotations

import functools
import hashlib
import http
import json
import random
import secrets
import string
import time
from collections.abc import Iterator

from airflow_provider_veo.testing import SAMPLE_MP4

#: The first 32 bytes of a real MP4 (the ``ftyp`` box of ``sample.mp4``): large bodies start with them.
FTYP_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
#: The smallest generated body: its ``ftyp`` head.
MIN_VIDEO_BYTES = len(FTYP_HEADER)
#: Large bodies are generated and written in blocks of this size, never held whole in memory.
BLOCK_BYTES = 1024 * 1024

_ALNUM = string.ascii_letters + string.digits


@functools.cache
def sample_bytes() -> bytes:
    return SAMPLE_MP4.read_bytes()


@functools.cache
def _blocks() -> tuple[bytes, bytes, bytes]:
    """The first block (``ftyp`` head), its corrupt twin (zeroed head) and the filler block, made once."""
    block = random.Random(0x7E0).randbytes(BLOCK_BYTES)
    tail = block[len(FTYP_HEADER) :]
    return FTYP_HEADER + tail, bytes(len(FTYP_HEADER)) + tail, block


def video_size(video_bytes: int | None) -> int:
    """The size of the body served for a scenario's ``video_bytes`` (``None``: the sample clip)."""
    return video_bytes if video_bytes is not None else len(sample_bytes())


def video_chunks(video_bytes: int | None, *, corrupt: bool = False) -> Iterator[bytes | memoryview]:
    """The body in chunks of at most :data:`BLOCK_BYTES`; ``corrupt`` zeroes the ``ftyp`` header."""
    if video_bytes is None:
        sample = sample_bytes()
        yield bytes(len(FTYP_HEADER)) + sample[len(FTYP_HEADER) :] if corrupt else sample
        return
    first, corrupt_first, block = _blocks()
    left = video_bytes
    chunk: bytes = corrupt_first if corrupt else first
    while left > 0:
        view = memoryview(chunk)[: min(left, BLOCK_BYTES)]
        yield view
        left -= len(view)
        chunk = block


@functools.lru_cache(maxsize=32)
def expected_sha256(video_bytes: int | None) -> str:
    """The SHA-256 of the body a correct download of a ``video_bytes`` scenario delivers (cached)."""
    digest = hashlib.sha256()
    for chunk in video_chunks(video_bytes):
        digest.update(chunk)
    return digest.hexdigest()


def random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def request_id() -> str:
    """A gateway-style request id: a timestamp and random letters."""
    return time.strftime("%Y%m%d%H%M%S") + random_alnum(12)


def envelope(code: str, message: str, *, error_type: str = "comet_api_error") -> bytes:
    """CometAPI's documented error envelope; like the real one, the message ends with a request id."""
    body = {
        "error": {
            "message": f"{message} (request id: {request_id()})",
            "type": error_type,
            "param": "",
            "code": code,
        }
    }
    return json.dumps(body).encode()


def status_error(status: int, model: str) -> tuple[str, str]:
    """The code and message the documented API plausibly sends with an injected status."""
    known = {
        402: ("insufficient_user_quota", "Insufficient account balance, please top up"),
        429: ("rate_limit_exceeded", "The upstream load is saturated, please try again later"),
        500: ("internal_server_error", "Internal server error"),
        502: ("bad_response_status_code", "bad response status code 502"),
        503: ("model_not_found", f"No available channel for model {model} under group default"),
        504: ("gateway_timeout", "The upstream did not answer in time"),
        524: ("upstream_timeout", "A timeout occurred while waiting for the upstream"),
    }
    if status in known:
        return known[status]
    return "", status_phrase(status)


def status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def storage_error(code: str, message: str) -> bytes:
    """An S3-style XML error, as the CDN behind ``video_url`` answers."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    ).encode()
