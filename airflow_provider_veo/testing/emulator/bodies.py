"""What the emulator sends: video bodies (the sample clip or a generated one) and error bodies.

Large bodies are generated block by block from one deterministic random block, so a multi-gigabyte
download costs neither memory nor CPU here, and its digest can be computed without serving it. They
are structurally valid MP4s: the sample's ``ftyp`` and ``moov`` boxes, then one ``mdat`` box whose
size covers the filler, so a client that walks the top-level boxes accepts them.

Every body says it is the clip the job asked for (:class:`Clip`): the sample's ``moov`` is rewritten
in place, with the job's duration in ``mvhd`` and ``tkhd`` and its frame size in the video track's
``tkhd`` (a presentation size, which players scale the 320x180 pictures to), so a client that reads
the movie header sees no mismatch. Rewriting keeps every box's length: a body's size does not depend
on its clip.
"""

from __future__ import annotations

import functools
import hashlib
import http
import json
import random
import re
import secrets
import string
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from airflow_provider_veo.testing.sample import SAMPLE_MP4

#: The first 32 bytes of a real MP4 (the ``ftyp`` box of ``sample.mp4``): every body starts with them.
FTYP_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
#: Large bodies are generated and written in blocks of this size, never held whole in memory.
BLOCK_BYTES = 1024 * 1024
#: The largest box size a 32-bit header can state; a larger ``mdat`` uses the 64-bit ``largesize``.
MAX_BOX32 = 0xFFFFFFFF

_ALNUM = string.ascii_letters + string.digits


@functools.cache
def sample_bytes() -> bytes:
    return SAMPLE_MP4.read_bytes()


def _top_level_boxes(data: bytes) -> dict[bytes, bytes]:
    """The sample's top-level boxes by type (32-bit sizes only: the sample has no large box)."""
    boxes, position = {}, 0
    while position < len(data):
        size, kind = struct.unpack_from(">I4s", data, position)
        boxes[kind] = data[position : position + size]
        position += size
    return boxes


@dataclass(frozen=True)
class Clip:
    """What a served MP4 says it is: its duration and frame size, written into the sample's ``moov``."""

    seconds: float
    width: int
    height: int

    @classmethod
    def of(cls, seconds: str, size: str) -> Clip:
        """The clip a job of ``seconds`` and ``size`` (as the job reports them) renders. An orientation
        hint (``16x9``, ``9x16``, any ``WxH`` Veo does not render) gives 720p that way; a value that is
        not a number or a ``WxH`` (an unknown model's) keeps the sample's."""
        duration = float(seconds) if _NUMBER.match(seconds) else SAMPLE_CLIP.seconds
        frame = _FRAME.match(size.lower())
        if not frame:
            return cls(duration, SAMPLE_CLIP.width, SAMPLE_CLIP.height)
        width, height = int(frame[1]), int(frame[2])
        if size.lower() not in _RENDERED_SIZES:
            width, height = (1280, 720) if width > height else (720, 1280)
        return cls(duration, width, height)


#: The clip the sample itself is: what a body without a clip says.
SAMPLE_CLIP = Clip(1.5, 320, 180)
#: Frame sizes Veo renders as asked; any other ``WxH`` is read as an orientation hint.
_RENDERED_SIZES = frozenset({"1280x720", "720x1280", "1920x1080", "3840x2160"})
_NUMBER = re.compile(r"^\d{1,3}(\.\d+)?$")
_FRAME = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def _with_clip(moov: bytes, clip: Clip) -> bytes:
    """The ``moov`` box with ``clip``'s duration in ``mvhd`` and in each track's ``tkhd``, and its frame
    size in the video track's ``tkhd``. Version 0 and 1 boxes (32- and 64-bit times) both."""
    data = bytearray(moov)
    timescale = 0
    for kind, start in _child_boxes(data, 8, len(data)):
        version = data[start + 8]
        if kind == b"mvhd":
            at = start + 8 + (20 if version == 1 else 12)
            (timescale,) = struct.unpack_from(">I", data, at)
            _put_time(data, at + 4, version, round(clip.seconds * timescale))
        elif kind == b"trak":
            end = start + struct.unpack_from(">I", data, start)[0]
            boxes = dict(_child_boxes(data, start + 8, end))
            tkhd = boxes[b"tkhd"]
            version = data[tkhd + 8]
            _put_time(data, tkhd + 8 + (28 if version == 1 else 20), version, round(clip.seconds * timescale))
            if _is_video(data, boxes[b"mdia"]):
                struct.pack_into(
                    ">II", data, tkhd + 8 + (88 if version == 1 else 76), clip.width << 16, clip.height << 16
                )
    return bytes(data)


def _child_boxes(data: bytearray, start: int, end: int) -> Iterator[tuple[bytes, int]]:
    """The type and offset of each box between ``start`` and ``end`` (the sample has 32-bit sizes only)."""
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        yield kind, start
        start += size


def _is_video(data: bytearray, mdia: int) -> bool:
    end = mdia + struct.unpack_from(">I", data, mdia)[0]
    hdlr = dict(_child_boxes(data, mdia + 8, end))[b"hdlr"]
    return bytes(data[hdlr + 16 : hdlr + 20]) == b"vide"


def _put_time(data: bytearray, at: int, version: int, value: int) -> None:
    struct.pack_into(">Q" if version == 1 else ">I", data, at, value)


@functools.lru_cache(maxsize=64)
def _movie_head(clip: Clip | None) -> bytes:
    """The sample's ``ftyp`` and ``moov`` boxes, saying ``clip``: what a generated body starts with."""
    boxes = _top_level_boxes(sample_bytes())
    return boxes[b"ftyp"] + (_with_clip(boxes[b"moov"], clip) if clip else boxes[b"moov"])


@functools.lru_cache(maxsize=64)
def clip_bytes(clip: Clip | None) -> bytes:
    """The sample clip saying it is ``clip`` (``None``: the sample as it is)."""
    sample = sample_bytes()
    head = _movie_head(clip)
    return head + sample[len(head) :]


#: The smallest generated body: the sample's ``ftyp`` and ``moov``, then an empty ``mdat``.
MIN_VIDEO_BYTES = len(_movie_head(None)) + 8


def _generated_head(video_bytes: int, clip: Clip | None) -> bytes:
    """``ftyp``, ``moov`` and the header of an ``mdat`` that runs to the end of a ``video_bytes`` body."""
    head = _movie_head(clip)
    mdat = video_bytes - len(head)
    if mdat > MAX_BOX32:
        return head + struct.pack(">I4sQ", 1, b"mdat", mdat)
    return head + struct.pack(">I4s", mdat, b"mdat")


@functools.cache
def _filler_block() -> bytes:
    return random.Random(0x7E0).randbytes(BLOCK_BYTES)


def video_size(video_bytes: int | None) -> int:
    """The size of the body served for a scenario's ``video_bytes`` (``None``: the sample clip)."""
    return video_bytes if video_bytes is not None else len(sample_bytes())


def video_chunks(
    video_bytes: int | None, clip: Clip | None = None, *, corrupt: bool = False
) -> Iterator[bytes | memoryview]:
    """The body in chunks of at most :data:`BLOCK_BYTES`, saying it is ``clip`` (``None``: the sample's
    own header); ``corrupt`` zeroes the ``ftyp`` header."""
    if video_bytes is None:
        sample = clip_bytes(clip)
        yield bytes(len(FTYP_HEADER)) + sample[len(FTYP_HEADER) :] if corrupt else sample
        return
    head = _generated_head(video_bytes, clip)
    if corrupt:
        head = bytes(len(FTYP_HEADER)) + head[len(FTYP_HEADER) :]
    block = _filler_block()
    chunk, left = head + block[len(head) :], video_bytes
    while left > 0:
        view = memoryview(chunk)[: min(left, BLOCK_BYTES)]
        yield view
        left -= len(view)
        chunk = block


@functools.lru_cache(maxsize=32)
def expected_sha256(video_bytes: int | None, clip: Clip | None = None) -> str:
    """The SHA-256 of the body a correct download of a ``video_bytes`` scenario of ``clip`` delivers
    (cached)."""
    digest = hashlib.sha256()
    for chunk in video_chunks(video_bytes, clip):
        digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


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


def _google_error(status: int, message: str, reason: str) -> str:
    """An error body of Google's API, which new-api relays as the message of a flat error."""
    return json.dumps({"error": {"code": status, "message": message, "status": reason}})


@dataclass(frozen=True)
class GatewayError:
    """An error new-api answers: in its envelope (E) or as a flat task error (F)."""

    status: int
    shape: Literal["envelope", "flat"]
    #: The ``code`` field; the envelope's is often empty.
    code: str
    #: The message; ``{model}`` stands for the model of the request.
    message: str

    def worded(self, model: str) -> str:
        return self.message.replace("{model}", model)


#: new-api's errors by name: the values ``Scenario.post_failure`` accepts besides statuses.
GATEWAY_ERRORS: dict[str, GatewayError] = {
    "invalid_token": GatewayError(401, "envelope", "", "Invalid token"),
    "model_forbidden": GatewayError(403, "envelope", "", "This token has no access to model {model}"),
    "model_not_found": GatewayError(
        503,
        "envelope",
        "model_not_found",
        "No available channel for model {model} under group default (distributor)",
    ),
    "insufficient_user_quota": GatewayError(
        403,
        "flat",
        "insufficient_user_quota",
        "用户额度不足, 剩余额度: ＄0.00",  # noqa: RUF001 - the gateway's own text
    ),
    "pre_consume_token_quota_failed": GatewayError(
        403,
        "flat",
        "pre_consume_token_quota_failed",
        "token quota is not enough, token remain quota: ＄0.00, need quota: ＄0.40",  # noqa: RUF001
    ),
    "model_retired": GatewayError(
        404,
        "flat",
        "fail_to_fetch_task",
        _google_error(
            404,
            "models/{model} is no longer available to new users. Please update your code to use a "
            "newer model.",
            "NOT_FOUND",
        ),
    ),
    "fail_to_fetch_task": GatewayError(
        400,
        "flat",
        "fail_to_fetch_task",
        _google_error(400, "Request contains an invalid argument.", "INVALID_ARGUMENT"),
    ),
    "saturated": GatewayError(429, "flat", "fail_to_fetch_task", "当前分组上游负载已饱和，请稍后再试"),  # noqa: RUF001
    "do_request_failed": GatewayError(
        500,
        "flat",
        "do_request_failed",
        'Post "https://generativelanguage.googleapis.com/v1beta/models/{model}:predictLongRunning": EOF',
    ),
    "get_channel_failed": GatewayError(
        500, "flat", "get_channel_failed", "no available channel for model {model}"
    ),
    "unmarshal_response_failed": GatewayError(
        500, "flat", "unmarshal_response_failed", "invalid character '<' looking for beginning of value"
    ),
}
#: What new-api answers for an injected status: a named error, or the upstream's status relayed flat.
_GATEWAY_ERROR_BY_STATUS = {
    401: "invalid_token",
    403: "insufficient_user_quota",
    429: "saturated",
    500: "do_request_failed",
    503: "model_not_found",
}


def gateway_error(failure: int | str) -> GatewayError:
    """The new-api error for a ``post_failure`` or ``server_errors`` value: a name or a status."""
    if isinstance(failure, str):
        return GATEWAY_ERRORS[failure]
    if failure in _GATEWAY_ERROR_BY_STATUS:
        return GATEWAY_ERRORS[_GATEWAY_ERROR_BY_STATUS[failure]]
    upstream = json.dumps(
        {"error": {"code": failure, "message": status_phrase(failure), "status": "UNAVAILABLE"}}
    )
    return GatewayError(failure, "flat", "fail_to_fetch_task", upstream)


def gateway_envelope(code: str, message: str, request_id: str) -> bytes:
    """new-api's envelope (E): type ``new_api_error``, the request id in the message, no ``param``."""
    error = {"message": f"{message} (request id: {request_id})", "type": "new_api_error", "code": code}
    return json.dumps({"error": error}, ensure_ascii=False).encode()


def gateway_flat(code: str, message: str) -> bytes:
    """new-api's flat task error (F): no request id in the body."""
    return json.dumps({"code": code, "message": message, "data": None}, ensure_ascii=False).encode()


def gateway_proxy_error(message: str, error_type: str) -> bytes:
    """new-api's ``/content`` error (P): a message and a type, no code."""
    return json.dumps({"error": {"message": message, "type": error_type}}).encode()


def broken_body(kind: str, video_id: str) -> bytes:
    """A 200 body that is not a readable job (``Scenario.broken_polls``)."""
    if kind == "nested":
        return b'{"id": "' + video_id.encode() + b'", "status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    if kind == "malformed":
        return b'{"id": "' + video_id.encode() + b'", "status": "in_progr'
    return b'{"id": "\xff\xfe\xfd", "status": "\xc3"}'


def internal_task_view(
    job_id: str, status: str, progress: int, fail_reason: str, created_at: int, finished_at: int | None
) -> bytes:
    """The gateway's internal task view that some 2026 releases answered to a retrieve (new-api #7194)."""
    internal = {"completed": "SUCCESS", "failed": "FAILURE", "error": "FAILURE", "in_progress": "IN_PROGRESS"}
    view: dict[str, object] = {
        "task_id": job_id,
        "platform": "gemini",
        "status": internal.get(status, "QUEUED"),
        "progress": f"{progress}%",
        "fail_reason": fail_reason if status in ("failed", "error") else "",
        "created_at": created_at,
    }
    if finished_at:
        view["finished_at"] = finished_at
    return json.dumps(view).encode()


#: What nginx in front of the gateway answers when the gateway does not: not the API's JSON.
PROXY_502_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def storage_error(code: str, message: str) -> bytes:
    """An S3-style XML error, as the CDN behind ``video_url`` answers."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    ).encode()
