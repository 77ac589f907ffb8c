"""A local stand-in for CometAPI's ``/v1/videos`` API, for tests, examples and benchmarks.

It speaks the contract of ``API.md``: multipart create, polling, ``/content``, a separate "CDN" for
``video_url``, the error envelope, and the faults a real deployment meets (429, 5xx bursts, dropped
connections, truncated or corrupt downloads, expired URLs, slow answers). Standard library only, so
it runs anywhere the provider is installed and costs nothing to import.

Faults and outcomes come from a :class:`Scenario`. Three places supply one:

* the emulator-wide scenario (``VeoEmulator(scenario=...)`` or ``emu.scenario = ...``): the default
  for new jobs; setting it also arms its request faults, which then count every API request;
* ``emu.queue_scenario(s)``: a FIFO; each valid create call (authenticated, not rate limited, its
  fields accepted) takes the next one, for that job only;
* a marker in the prompt, ``[emu:key=value,key=value]``, applied on top of either, for that job only.
  Keys are :class:`Scenario` field names or the aliases in :data:`MARKER_ALIASES`; lists and
  dictionaries use ``|`` between items and ``:`` between key and value
  (``[emu:errors=503|502,spelling=completed:SUCCESS|in_progress:IN_PROGRESS]``); values are
  percent-decoded, so ``%2C`` stands for a comma. An unknown key is answered with a 400.

A scenario that governs one job (queued or marker) applies its request faults to that job's own
requests: its ``post_failure`` to the create call (for a marker: to the first create carrying that
exact prompt, so a retried task is not refused forever), and the others to the GETs of the job.

Run ``python -m airflow_provider_veo.testing.emulator --port 8765`` to use it from a shell.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import hashlib
import http
import json
import random
import secrets
import socket
import socketserver
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from airflow_provider_veo import api
from airflow_provider_veo.testing import SAMPLE_MP4

#: The first 32 bytes of a real MP4 (the ``ftyp`` box of ``sample.mp4``): large bodies start with them.
FTYP_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
#: Large bodies are generated and written in blocks of this size, never held whole in memory.
BLOCK_BYTES = 1024 * 1024
#: Create bodies above this are refused with 413 (two 20 MiB references fit comfortably).
MAX_BODY_BYTES = 2 * api.MAX_REFERENCE_BYTES + 8 * 1024 * 1024

#: The terminal statuses, which are also the outcomes a scenario can ask for.
TERMINAL_STATUSES = frozenset({"completed", "failed", "error"})
POST_FAILURES = frozenset({"reset_before_create", "reset_after_create"})

#: Short names accepted in prompt markers, beside the full :class:`Scenario` field names.
MARKER_ALIASES: dict[str, str] = {
    "polls": "polls_until_done",
    "wait": "seconds_until_done",
    "code": "error_code",
    "message": "error_message",
    "spelling": "status_spelling",
    "errors": "server_errors",
    "resets": "reset_gets",
    "expired": "expired_url_fetches",
    "bytes": "video_bytes",
}

_ALNUM = string.ascii_letters + string.digits


@dataclass
class Scenario:
    """How the emulator behaves: job outcomes, and faults injected into requests.

    Job fields (read when a job is created): ``polls_until_done``, ``seconds_until_done``,
    ``outcome``, ``error_code``, ``error_message``, ``status_spelling``, ``missing_video_url``,
    ``truncate_download``, ``corrupt_download``, ``expired_url_fetches``, ``video_bytes``.
    Request faults (used up as requests arrive): ``rate_limit``, ``server_errors``, ``post_failure``,
    ``reset_gets``, ``slow_first_n``; ``latency`` applies to every answer.
    """

    #: Retrieve GETs answered as not finished before the terminal one: ``queued`` first, then
    #: ``in_progress`` with rising progress.
    polls_until_done: int = 2
    #: Finish on the wall clock instead (wins over ``polls_until_done``): ``queued`` for the first
    #: fifth of the time, then ``in_progress``.
    seconds_until_done: float | None = None
    #: ``completed``, ``failed`` or ``error`` (CometAPI's own terminal status).
    outcome: str = "completed"
    error_code: str = "content_policy_violation"
    error_message: str = "The prompt was blocked by the safety filter"
    #: Spell statuses differently, e.g. ``{"completed": "SUCCESS", "in_progress": "IN_PROGRESS"}``.
    status_spelling: dict[str, str] | None = None
    #: The next N API requests are answered 429 with ``Retry-After: retry_after`` (seconds, fractions too).
    rate_limit: int = 0
    retry_after: float = 0.05
    #: The next API GETs are answered with these statuses, in order, each with an error envelope.
    server_errors: list[int] = field(default_factory=list)
    #: The next create fails: an HTTP status (nothing is created), ``"reset_before_create"`` or
    #: ``"reset_after_create"`` (the connection is closed without an answer, the job exists or not).
    post_failure: str | int | None = None
    #: The next N API GETs are dropped: the connection closes without an answer.
    reset_gets: int = 0
    #: Completed jobs carry no ``video_url``: the client must use ``/content``.
    missing_video_url: bool = False
    #: Downloads announce the full Content-Length, send half of it, then close.
    truncate_download: bool = False
    #: Downloads are served with their ``ftyp`` header zeroed, so they are not MP4s.
    corrupt_download: bool = False
    #: The CDN answers 403 "expired" to the first N fetches of this job's URLs; an expired URL stays
    #: expired, and each retrieve of the completed job hands out a fresh one.
    expired_url_fetches: int = 0
    #: Seconds added before every answer (benchmarks use ~0.05 to look like a remote API).
    latency: float = 0.0
    #: The next N API requests are delayed by ``slow_seconds`` more, e.g. past the client's timeout.
    slow_first_n: int = 0
    slow_seconds: float = 0.0
    #: Serve a generated body of this many bytes (valid ``ftyp`` head, deterministic filler) instead
    #: of the sample clip.
    video_bytes: int | None = None
    #: Hand out this id instead of a generated one: for testing how clients cope with odd ids.
    video_id: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in TERMINAL_STATUSES:
            raise ValueError(f"outcome must be one of {sorted(TERMINAL_STATUSES)}, got {self.outcome!r}")
        if isinstance(self.post_failure, str) and self.post_failure not in POST_FAILURES:
            raise ValueError(
                f"post_failure must be an HTTP status or one of {sorted(POST_FAILURES)}, "
                f"got {self.post_failure!r}"
            )
        if self.video_bytes is not None and self.video_bytes < len(FTYP_HEADER):
            raise ValueError(f"video_bytes must be at least {len(FTYP_HEADER)}")


@dataclass(frozen=True)
class FilePart:
    """A file part of a create call, kept as a digest so records never hold large bodies."""

    name: str
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass
class RecordedRequest:
    """One request as the emulator saw it. Header names are lower-cased."""

    listener: str
    method: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)
    #: The status answered, or ``None`` while answering or when the connection was dropped.
    status: int | None = None
    #: Arrival time (``time.time()``), to check polling intervals.
    at: float = 0.0


@dataclass
class EmulatedJob:
    """The emulator's state of one job."""

    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created_at: int
    scenario: Scenario
    status: str = "queued"
    progress: int = 0
    completed_at: int | None = None
    #: Retrieve GETs answered for this job.
    polls: int = 0
    #: Video bodies served for this job (``/content`` and the CDN together).
    downloads: int = 0
    started: float = field(default_factory=time.monotonic, repr=False)
    faults: _Faults | None = field(default=None, repr=False)
    expired_left: int = field(default=0, repr=False)


class _Faults:
    """The request faults of one scenario, used up as requests arrive (callers hold the emulator lock)."""

    def __init__(self, scenario: Scenario) -> None:
        self.latency = scenario.latency
        self.slow_left = scenario.slow_first_n
        self.slow_seconds = scenario.slow_seconds
        self.rate_limit_left = scenario.rate_limit
        self.retry_after = scenario.retry_after
        self.server_errors = collections.deque(scenario.server_errors)
        self.resets_left = scenario.reset_gets
        self.post_failure = scenario.post_failure

    def any_armed(self) -> bool:
        return bool(
            self.latency
            or self.slow_left
            or self.rate_limit_left
            or self.server_errors
            or self.resets_left
            or self.post_failure is not None
        )

    def delay(self) -> float:
        seconds = self.latency
        if self.slow_left > 0:
            self.slow_left -= 1
            seconds += self.slow_seconds
        return seconds

    def take_rate_limit(self) -> float | None:
        """The Retry-After to answer 429 with, or ``None`` when this request is not rate limited."""
        if self.rate_limit_left > 0:
            self.rate_limit_left -= 1
            return self.retry_after
        return None

    def take_get_fault(self) -> int | str | None:
        """``"reset"``, an HTTP status, or ``None``."""
        if self.resets_left > 0:
            self.resets_left -= 1
            return "reset"
        if self.server_errors:
            return self.server_errors.popleft()
        return None


class _Drop(Exception):
    """Raised inside a handler to close the connection without answering."""


class _Reply(Exception):
    """Raised inside a handler to answer with an error envelope."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


@functools.cache
def _sample_bytes() -> bytes:
    return SAMPLE_MP4.read_bytes()


@functools.cache
def _filler_blocks() -> tuple[bytes, bytes, bytes]:
    """The first block (``ftyp`` head), its corrupt twin (zeroed head) and the filler block, computed once."""
    block = random.Random(0x7E0).randbytes(BLOCK_BYTES)
    tail = block[len(FTYP_HEADER) :]
    return FTYP_HEADER + tail, bytes(len(FTYP_HEADER)) + tail, block


def _video_size(scenario: Scenario) -> int:
    return scenario.video_bytes if scenario.video_bytes is not None else len(_sample_bytes())


def _video_chunks(scenario: Scenario, *, corrupt: bool = False) -> Iterator[bytes | memoryview]:
    """The body of a job's video in chunks of at most 1 MiB; ``corrupt`` zeroes the ``ftyp`` header."""
    if scenario.video_bytes is None:
        sample = _sample_bytes()
        yield bytes(len(FTYP_HEADER)) + sample[len(FTYP_HEADER) :] if corrupt else sample
        return
    first, corrupt_first, block = _filler_blocks()
    left = scenario.video_bytes
    chunk: bytes = corrupt_first if corrupt else first
    while left > 0:
        view = memoryview(chunk)[: min(left, BLOCK_BYTES)]
        yield view
        left -= len(view)
        chunk = block


@functools.lru_cache(maxsize=32)
def _sha256_of(video_bytes: int | None) -> str:
    digest = hashlib.sha256()
    for chunk in _video_chunks(Scenario(video_bytes=video_bytes)):
        digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def _random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + _random_alnum(12)


def _envelope(code: str, message: str, *, error_type: str = "comet_api_error") -> bytes:
    """CometAPI's error envelope; like the real one, the message ends with a request id."""
    body = {
        "error": {
            "message": f"{message} (request id: {_request_id()})",
            "type": error_type,
            "param": "",
            "code": code,
        }
    }
    return json.dumps(body).encode()


def _status_error(status: int, model: str) -> tuple[str, str]:
    """The code and message the real gateway plausibly sends with an injected status."""
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
    try:
        return "", http.HTTPStatus(status).phrase
    except ValueError:
        return "", f"HTTP {status}"


@dataclass
class _Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _parse_multipart(body: bytes, content_type: str) -> list[_Part]:
    """Split a ``multipart/form-data`` body into its parts. Raises ``ValueError`` when malformed."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("the multipart Content-Type has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    position = body.find(delimiter)
    if position < 0:
        raise ValueError("the multipart body does not contain its boundary")
    parts = []
    position += len(delimiter)
    while not body.startswith(b"--", position):
        if not body.startswith(b"\r\n", position):
            raise ValueError("a multipart boundary is not followed by CRLF")
        end = body.find(b"\r\n" + delimiter, position + 2)
        if end < 0:
            raise ValueError("the multipart body is not terminated")
        head_end = body.find(b"\r\n\r\n", position, end + 2)
        if head_end < 0:
            raise ValueError("a multipart part has no header block")
        headers = BytesHeaderParser(policy=HTTP).parsebytes(body[position + 2 : head_end + 2])
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("a multipart part has no name")
        parts.append(
            _Part(
                name=name,
                filename=headers.get_filename(),
                content_type=headers.get_content_type() if headers["content-type"] else "",
                data=body[head_end + 4 : end],
            )
        )
        position = end + 2 + len(delimiter)
    return parts


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    return lambda value: None if value.lower() == "none" else parse(value)


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {value!r}")
    return lowered in ("true", "1", "yes")


def _parse_post_failure(value: str) -> int | str:
    return int(value) if value.isdigit() else value


#: How a marker value is read, by the type annotation of its :class:`Scenario` field.
_CONVERTERS: dict[str, Callable[[str], object]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _parse_bool,
    "int | None": _optional(int),
    "float | None": _optional(float),
    "str | int | None": _optional(_parse_post_failure),
    "list[int]": lambda value: [int(item) for item in value.split("|") if item],
    "dict[str, str] | None": _optional(
        lambda value: dict(item.split(":", 1) for item in value.split("|") if item)
    ),
}
_FIELD_TYPES = {f.name: str(f.type) for f in fields(Scenario)}


def parse_marker(prompt: str) -> dict[str, Any]:
    """The scenario overrides in a prompt's ``[emu:...]`` markers. Raises ``ValueError`` on a bad one."""
    overrides: dict[str, Any] = {}
    start = prompt.find("[emu:")
    while start >= 0:
        end = prompt.find("]", start)
        if end < 0:
            raise ValueError("an [emu:...] marker is not closed")
        for pair in filter(None, (p.strip() for p in prompt[start + 5 : end].split(","))):
            key, separator, value = pair.partition("=")
            name = MARKER_ALIASES.get(key.strip(), key.strip())
            if not separator or name not in _FIELD_TYPES:
                raise ValueError(f"unknown emulator marker entry {pair!r}")
            try:
                overrides[name] = _CONVERTERS[_FIELD_TYPES[name]](unquote(value.strip()))
            except ValueError as error:
                raise ValueError(f"bad value in emulator marker entry {pair!r}: {error}") from None
        start = prompt.find("[emu:", end)
    replace(Scenario(), **overrides)  # Scenario's own checks (outcome, post_failure), raised here.
    return overrides


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """A threaded server that tracks its open connections, so ``stop()`` can close idle keep-alives."""

    daemon_threads = True
    request_queue_size = 2048

    def __init__(self, address: tuple[str, int], handler: type[_Handler], emulator: VeoEmulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # A client went away (timeout, reset, closed mid-download): expected in tests.
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Common plumbing of both listeners: keep-alive HTTP/1.1, Content-Length always, no logging."""

    protocol_version = "HTTP/1.1"
    server_version = "veo-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # Headers and body go out as separate writes.
    listener = ""
    server: _Server
    record: RecordedRequest

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a benchmark makes thousands of requests."""

    @property
    def emulator(self) -> VeoEmulator:
        return self.server.emulator

    def _start_record(
        self, form: list[tuple[str, str]] | None = None, files: list[FilePart] | None = None
    ) -> None:
        self.record = RecordedRequest(
            listener=self.listener,
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            form=form or [],
            files=files or [],
            at=time.time(),
        )
        self.emulator._add_record(self.record)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.record.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload: dict[str, Any]) -> None:
        self._send(200, json.dumps(payload).encode())

    def _send_error(self, reply: _Reply) -> None:
        self._send(reply.status, _envelope(reply.code, reply.message, **reply.extra), headers=reply.headers)

    def _drop(self) -> None:
        """Close the connection without a word, as a crashed proxy or a network fault would."""
        self.close_connection = True

    def _send_video(self, job: EmulatedJob) -> None:
        """Stream the job's body, applying its truncation and corruption faults."""
        scenario = job.scenario
        size = _video_size(scenario)
        limit = size // 2 if scenario.truncate_download else size
        self.record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.emulator._count_download(job)
        sent = 0
        for chunk in _video_chunks(scenario, corrupt=scenario.corrupt_download):
            piece = chunk[: limit - sent]
            self.wfile.write(piece)
            sent += len(piece)
            if sent >= limit:
                break
        if sent < size:
            self.close_connection = True


class _ApiHandler(_Handler):
    """The API listener: ``POST /v1/videos``, ``GET /v1/videos/{id}`` and ``GET /v1/videos/{id}/content``."""

    listener = "api"

    def do_POST(self) -> None:
        try:
            body = self._read_body()
        except _Reply as reply:
            self._start_record()
            self.close_connection = True  # The rest of the body was not read.
            self._send_error(reply)
            return
        form, files, parts, parse_error = self._parse_form(body)
        self._start_record(form, files)
        try:
            self._answer_post(parts, parse_error)
        except _Reply as reply:
            self._send_error(reply)
        except _Drop:
            self._drop()

    def do_GET(self) -> None:
        self._start_record()
        try:
            self._answer_get()
        except _Reply as reply:
            self._send_error(reply)
        except _Drop:
            self._drop()

    def _unsupported(self) -> None:
        """Veo has no list, delete or cancel endpoint; answer as an OpenAI-style gateway does."""
        try:
            self._read_body()
        except _Reply:
            self.close_connection = True
        self._start_record()
        self._send_error(_Reply(404, "invalid_url", f"Invalid URL ({self.command} {self.path})"))

    do_PUT = do_PATCH = do_DELETE = do_HEAD = _unsupported

    # -- plumbing --------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _Reply(400, "invalid_request", "Invalid Content-Length") from None
        if length > MAX_BODY_BYTES:
            raise _Reply(413, "request_too_large", f"The request body is over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";")[0], 16)
            except ValueError:
                raise _Reply(400, "invalid_request", "Malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # Trailers.
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _Reply(413, "request_too_large", f"The request body is over {MAX_BODY_BYTES} bytes")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _parse_form(
        self, body: bytes
    ) -> tuple[list[tuple[str, str]], list[FilePart], list[_Part] | None, str | None]:
        """Form fields and file digests for the record, the parts, and why parsing failed if it did."""
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True), [], None, None
        if not content_type.lower().startswith("multipart/form-data"):
            return [], [], None, None
        try:
            parts = _parse_multipart(body, content_type)
        except ValueError as error:
            return [], [], None, f"Malformed multipart body: {error}"
        form = [(p.name, p.data.decode("utf-8", "replace")) for p in parts if p.filename is None]
        files = [
            FilePart(p.name, p.filename, p.content_type, len(p.data), hashlib.sha256(p.data).hexdigest())
            for p in parts
            if p.filename is not None
        ]
        return form, files, parts, None

    def _check_auth_and_delay(self, job: EmulatedJob | None = None) -> None:
        emulator = self.emulator
        time.sleep(emulator._delay(job))
        authorization = self.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if not authorization:
            raise _Reply(401, "invalid_api_key", "No API key provided: send Authorization: Bearer <key>")
        if scheme.lower() != "bearer" or token.strip() != emulator.api_key:
            raise _Reply(401, "invalid_api_key", "Invalid API key")
        retry_after = emulator._take_rate_limit(job)
        if retry_after is not None:
            code, message = _status_error(429, job.model if job else api.DEFAULT_MODEL)
            raise _Reply(429, code, message, headers={"Retry-After": format(retry_after, "g")})

    # -- create ----------------------------------------------------------------------------

    def _answer_post(self, parts: list[_Part] | None, parse_error: str | None) -> None:
        if urlsplit(self.path).path != api.VIDEOS_PATH:
            raise _Reply(404, "invalid_url", f"Invalid URL (POST {self.path})")
        self._check_auth_and_delay()
        if parse_error:
            raise _Reply(400, "invalid_request", parse_error)
        if parts is None:
            raise _Reply(
                400,
                "invalid_request",
                "Content-Type must be multipart/form-data (send fields as form-data, even without files)",
            )
        scalars: dict[str, str] = {}
        references: list[_Part] = []
        for part in parts:
            if part.name == "input_reference":
                references.append(part)
            elif part.filename is None:
                scalars.setdefault(part.name, part.data.decode("utf-8", "replace"))
        prompt = scalars.get("prompt", "")
        model = scalars.get("model", "").strip() or "veo3.1"
        seconds, size = _validate(model, prompt, scalars.get("seconds", ""), scalars.get("size", ""))
        _validate_references(model, references)
        try:
            overrides = parse_marker(prompt)
        except ValueError as error:
            raise _Reply(400, "invalid_emulator_marker", str(error)) from None
        self._send_json(self.emulator._create(model, prompt, seconds, size, overrides))

    # -- retrieve and content ---------------------------------------------------------------

    def _answer_get(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        prefix = api.VIDEOS_PATH + "/"
        if not path.startswith(prefix) or path == prefix:
            raise _Reply(404, "invalid_url", f"Invalid URL (GET {self.path})")
        video_id, content = path[len(prefix) :], False
        if video_id.endswith("/content"):
            video_id, content = video_id[: -len("/content")], True
        emulator = self.emulator
        job = emulator._job(video_id)
        self._check_auth_and_delay(job)
        fault = emulator._take_get_fault(job)
        if fault == "reset":
            raise _Drop
        if isinstance(fault, int):
            code, message = _status_error(fault, job.model if job else api.DEFAULT_MODEL)
            raise _Reply(fault, code, message)
        if job is None:
            raise _Reply(404, "task_not_exist", f"Task not found: {video_id}")
        if not content:
            self._send_json(emulator._poll(job))
            return
        variant = dict(parse_qsl(split.query)).get("variant", "video")
        if variant != "video":
            raise _Reply(400, "invalid_request", f"Variant {variant!r} is not available for this model")
        if not emulator._content_ready(job):
            raise _Reply(
                400,
                "invalid_request_error",
                f"Video {video_id} is not ready yet (status: {job.status}); "
                "use GET /v1/videos/{video_id} to check its status",
                error_type="invalid_request_error",
            )
        self._send_video(job)


def _validate(model: str, prompt: str, seconds: str, size: str) -> tuple[str, str]:
    """Check the scalar fields against :data:`api.MODELS`; return ``seconds`` and ``size`` as answered."""
    if not prompt.strip():
        raise _Reply(400, "invalid_request", "prompt is required")
    spec = api.MODELS.get(model)
    seconds, size = seconds.strip(), size.strip()
    if spec is not None and spec.fixed_seconds:
        if seconds and seconds != "8":
            raise _Reply(400, "invalid_request", f"{model} renders 8-second clips only, got {seconds!r}")
        seconds = "8"
    elif spec is not None and seconds and seconds not in {str(s) for s in spec.seconds}:
        allowed = ", ".join(str(s) for s in spec.seconds)
        raise _Reply(400, "invalid_request", f"seconds must be one of {allowed} for {model}, got {seconds!r}")
    if spec is not None and spec.sizes is not None:
        if size and size not in spec.sizes:
            allowed = ", ".join(spec.sizes)
            raise _Reply(400, "invalid_request", f"size must be one of {allowed} for {model}, got {size!r}")
    elif spec is not None and size and api.orientation(size) is None:
        raise _Reply(
            400, "invalid_request", f"size must be WxH, landscape or portrait (e.g. 16x9), got {size!r}"
        )
    return seconds or "4", size or "1280x720"


def _validate_references(model: str, references: list[_Part]) -> None:
    spec = api.MODELS.get(model)
    limit = spec.max_references if spec else api.UNKNOWN_MODEL_MAX_REFERENCES
    if len(references) > limit:
        raise _Reply(
            400, "invalid_request", f"{model} takes at most {limit} input_reference, got {len(references)}"
        )
    for position, part in enumerate(references):
        if part.filename is None:
            url = part.data.decode("utf-8", "replace").strip()
            if api.reference_kind(url) != "url":
                raise _Reply(
                    400, "invalid_request", f"input_reference {position} must be an image or an http(s) URL"
                )
        elif len(part.data) > api.MAX_REFERENCE_BYTES:
            raise _Reply(
                400,
                "invalid_request",
                f"input_reference {position} is {len(part.data)} bytes, over {api.MAX_REFERENCE_BYTES}",
            )
        elif api.sniff_image_type(part.data[:16]) is None:
            raise _Reply(
                400, "invalid_request", f"input_reference {position} is not a PNG, JPEG or WebP image"
            )


def _fail_post(failure: int | str, model: str, retry_after: float) -> None:
    """Answer a create call with an injected failure instead of creating the job."""
    if failure == "reset_before_create":
        raise _Drop
    status = int(failure)
    code, message = _status_error(status, model)
    headers = {"Retry-After": format(retry_after, "g")} if status == 429 else None
    raise _Reply(status, code, message, headers=headers)


class _CdnHandler(_Handler):
    """The listener behind ``video_url``: public, addressed by token, refusing credentials as signed URLs."""

    listener = "cdn"

    def do_GET(self) -> None:
        self._start_record()
        emulator = self.emulator
        if "Authorization" in self.headers:
            emulator._count_cdn_authorization()
            self._send_xml(403, "AccessDenied", "Requests with an Authorization header are not allowed")
            return
        path = urlsplit(self.path).path
        token = path.removeprefix("/files/").removesuffix(".mp4")
        verdict = emulator._fetch(token) if path.startswith("/files/") and path.endswith(".mp4") else None
        if verdict is None:
            self._send_xml(404, "NoSuchKey", "The specified key does not exist.")
        elif verdict == "expired":
            self._send_xml(403, "AccessDenied", "Request has expired")
        else:
            self._send_video(verdict)

    do_HEAD = do_GET

    def _send_xml(self, status: int, code: str, message: str) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
        )
        self._send(status, body.encode(), "application/xml")


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class VeoEmulator:
    """Two local listeners, the API and a CDN, answering like CometAPI's Veo route.

    Answers where ``API.md`` is silent follow the most plausible real behaviour: an absent ``model``
    means ``veo3.1`` (the self-developed route's default), unknown fields are ignored, unknown models
    are accepted with the rules of :data:`api.UNKNOWN_MODEL_MAX_REFERENCES`, ``input_reference`` URLs
    are accepted without being fetched, and a failed job keeps the progress it had reached.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        scenario: Scenario | None = None,
        id_style: str = "colon",
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
    ) -> None:
        if id_style not in ("colon", "task"):
            raise ValueError(f"id_style must be 'colon' or 'task', got {id_style!r}")
        self.api_key = api_key
        self.id_style = id_style
        self.host = host
        self._ports = (port, cdn_port)
        self._lock = threading.Lock()
        self._scenario = scenario or Scenario()
        self._faults = _Faults(self._scenario)
        self._queue: collections.deque[Scenario] = collections.deque()
        self._failed_prompts: set[str] = set()
        self._jobs: dict[str, EmulatedJob] = {}
        self._tokens: dict[str, tuple[str, bool]] = {}
        self._records: list[RecordedRequest] = []
        self._cdn_authorization_attempts = 0
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> VeoEmulator:
        """Bind both listeners and serve them from background threads."""
        if self._servers:
            raise RuntimeError("the emulator is already running")
        self._servers = [
            _Server((self.host, self._ports[0]), _ApiHandler, self),
            _Server((self.host, self._ports[1]), _CdnHandler, self),
        ]
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="veo-emulator"
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection, idle keep-alives included."""
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers:
            server.server_close()
            server.close_connections()
        for thread in self._threads:
            thread.join()
        self._servers, self._threads = [], []

    def __enter__(self) -> VeoEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses and connections ---------------------------------------------------------

    def _address(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the emulator is not running: call start() first")
        return f"http://{self.host}:{self._servers[index].server_port}"

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:8765``."""
        return self._address(0)

    @property
    def cdn_url(self) -> str:
        """The base URL of the listener serving ``video_url``."""
        return self._address(1)

    def connection_json(self, conn_type: str = "veo") -> str:
        """The JSON form of an Airflow connection to this emulator, for ``AIRFLOW_CONN_*``."""
        return json.dumps({"conn_type": conn_type, "host": self.url, "password": self.api_key})

    def connection_uri(self, conn_type: str = "veo") -> str:
        """The URI form of the same connection; the host keeps its ``http://`` scheme."""
        port = urlsplit(self.url).port
        return f"{conn_type}://http://:{quote(self.api_key, safe='')}@{self.host}:{port}"

    def env(self, conn_id: str = "veo_default") -> dict[str, str]:
        """Environment variables that make ``conn_id`` point at this emulator."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json()}

    # -- scenarios -------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The emulator-wide scenario; assigning one also re-arms its request faults."""
        return self._scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self._scenario = scenario
            self._faults = _Faults(scenario)

    def queue_scenario(self, scenario: Scenario) -> None:
        """Use ``scenario`` for the next valid create call (authenticated, not rate limited, accepted)."""
        with self._lock:
            self._queue.append(scenario)

    # -- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request on both listeners, in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def posts(self) -> list[RecordedRequest]:
        """Create calls on the API listener, failed ones included."""
        return [
            r
            for r in self.requests
            if r.listener == "api" and r.method == "POST" and urlsplit(r.path).path == api.VIDEOS_PATH
        ]

    @property
    def jobs(self) -> dict[str, EmulatedJob]:
        """Jobs by id."""
        with self._lock:
            return dict(self._jobs)

    @property
    def cdn_authorization_attempts(self) -> int:
        """How many CDN requests carried an ``Authorization`` header (and were refused)."""
        with self._lock:
            return self._cdn_authorization_attempts

    def reset_records(self) -> None:
        """Forget recorded requests and CDN authorization attempts; jobs stay."""
        with self._lock:
            self._records.clear()
            self._cdn_authorization_attempts = 0

    def expected_bytes(self, video_id: str) -> int:
        """The size of the job's video as a correct download delivers it."""
        return _video_size(self._jobs[video_id].scenario)

    def expected_sha256(self, video_id: str) -> str:
        """The SHA-256 of the job's video as a correct download delivers it (streamed once, then cached)."""
        return _sha256_of(self._jobs[video_id].scenario.video_bytes)

    # -- used by the handlers (names start with _ : not part of the API) ------------------

    def _add_record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def _job(self, video_id: str) -> EmulatedJob | None:
        with self._lock:
            return self._jobs.get(video_id)

    def _delay(self, job: EmulatedJob | None) -> float:
        with self._lock:
            return self._faults.delay() + (job.faults.delay() if job and job.faults else 0.0)

    def _take_rate_limit(self, job: EmulatedJob | None) -> float | None:
        with self._lock:
            retry_after = self._faults.take_rate_limit()
            if retry_after is None and job and job.faults:
                retry_after = job.faults.take_rate_limit()
            return retry_after

    def _take_get_fault(self, job: EmulatedJob | None) -> int | str | None:
        with self._lock:
            fault = self._faults.take_get_fault()
            if fault is None and job and job.faults:
                fault = job.faults.take_get_fault()
            return fault

    def _count_cdn_authorization(self) -> None:
        with self._lock:
            self._cdn_authorization_attempts += 1

    def _count_download(self, job: EmulatedJob) -> None:
        with self._lock:
            job.downloads += 1

    def _new_id(self, model: str) -> str:
        if self.id_style == "task":
            return "task_" + _random_alnum(32)
        return f"{model}:{int(time.time())}-{_random_alnum(10)}"

    def _create(
        self, model: str, prompt: str, seconds: str, size: str, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        """Create a job and answer its object, or fail the call as the scenarios in force say."""
        with self._lock:
            failure, self._faults.post_failure = self._faults.post_failure, None
            retry_after = self._faults.retry_after
            if failure is not None and failure != "reset_after_create":
                _fail_post(failure, model, retry_after)
            queued = self._queue.popleft() if self._queue else None
            faults = _Faults(replace(queued or Scenario(), **overrides))
            marker_failure_unused = queued is not None or prompt not in self._failed_prompts
            if failure is None and faults.post_failure is not None and marker_failure_unused:
                failure, retry_after = faults.post_failure, faults.retry_after
                self._failed_prompts.add(prompt)
            if failure is not None and failure != "reset_after_create":
                _fail_post(failure, model, retry_after)
            scenario = replace(queued or self._scenario, **overrides)
            job = EmulatedJob(
                id=scenario.video_id or self._new_id(model),
                model=model,
                prompt=prompt,
                seconds=seconds,
                size=size,
                created_at=int(time.time()),
                scenario=scenario,
                faults=faults if faults.any_armed() else None,
                expired_left=scenario.expired_url_fetches,
            )
            self._jobs[job.id] = job
            if failure == "reset_after_create":
                raise _Drop
            return self._render(job)

    def _advance(self, job: EmulatedJob, *, poll: bool) -> None:
        """Move the job along: one step per retrieve GET, or by the clock (callers hold the lock)."""
        if poll:
            job.polls += 1
        if job.status in TERMINAL_STATUSES:
            return
        scenario = job.scenario
        if scenario.seconds_until_done is not None:
            elapsed = time.monotonic() - job.started
            fraction = elapsed / scenario.seconds_until_done if scenario.seconds_until_done > 0 else 1.0
            if fraction >= 1:
                self._finish(job)
            elif fraction >= 0.2:
                job.status, job.progress = "in_progress", max(job.progress, min(99, int(fraction * 100)))
            return
        if not poll:
            return
        if job.polls > scenario.polls_until_done:
            self._finish(job)
        elif job.polls > 1:
            job.status, job.progress = "in_progress", (job.polls - 1) * 100 // scenario.polls_until_done

    @staticmethod
    def _finish(job: EmulatedJob) -> None:
        job.status = job.scenario.outcome
        job.completed_at = int(time.time())
        if job.status == "completed":
            job.progress = 100

    def _poll(self, job: EmulatedJob) -> dict[str, Any]:
        with self._lock:
            self._advance(job, poll=True)
            return self._render(job, issue_url=True)

    def _content_ready(self, job: EmulatedJob) -> bool:
        with self._lock:
            self._advance(job, poll=False)
            return job.status == "completed"

    def _render(self, job: EmulatedJob, *, issue_url: bool = False) -> dict[str, Any]:
        """The job object of ``API.md``; a retrieve of a completed job hands out a fresh ``video_url``."""
        spelling = job.scenario.status_spelling or {}
        payload: dict[str, Any] = {
            "id": job.id,
            "task_id": job.id,
            "object": "video",
            "model": job.model,
            "status": spelling.get(job.status, job.status),
            "progress": job.progress,
            "created_at": job.created_at,
            "seconds": job.seconds,
            "size": job.size,
        }
        if job.status == "completed":
            payload["completed_at"] = job.completed_at
            if issue_url and not job.scenario.missing_video_url:
                token = secrets.token_urlsafe(24)
                self._tokens[token] = (job.id, False)
                payload["video_url"] = f"{self.cdn_url}/files/{token}.mp4"
        elif job.status in TERMINAL_STATUSES:
            payload["error"] = {"code": job.scenario.error_code, "message": job.scenario.error_message}
        return payload

    def _fetch(self, token: str) -> EmulatedJob | str | None:
        """What the CDN serves for ``token``: the job, ``"expired"``, or ``None`` for an unknown token."""
        with self._lock:
            if token not in self._tokens:
                return None
            video_id, expired = self._tokens[token]
            job = self._jobs[video_id]
            if not expired and job.expired_left > 0:
                job.expired_left -= 1
                self._tokens[token] = (video_id, True)
                expired = True
            return "expired" if expired else job


def main(argv: list[str] | None = None) -> None:
    """Run the emulator until Ctrl-C, printing the Airflow connection that points at it."""
    parser = argparse.ArgumentParser(description="A local stand-in for CometAPI's /v1/videos API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cdn-port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--id-style", choices=("colon", "task"), default="colon")
    parser.add_argument("--polls", type=int, default=Scenario.polls_until_done, help="polls until done")
    parser.add_argument("--seconds-until-done", type=float, default=None, help="finish on the clock instead")
    args = parser.parse_args(argv)
    scenario = Scenario(polls_until_done=args.polls, seconds_until_done=args.seconds_until_done)
    emulator = VeoEmulator(
        args.api_key,
        scenario=scenario,
        id_style=args.id_style,
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
    )
    with emulator:
        print(f"Veo emulator: API {emulator.url}, CDN {emulator.cdn_url}", flush=True)
        print(f"export AIRFLOW_CONN_VEO_DEFAULT='{emulator.connection_json()}'", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("Stopping.", flush=True)


if __name__ == "__main__":
    main()
