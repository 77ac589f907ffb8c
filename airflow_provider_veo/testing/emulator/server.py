"""The listeners: HTTP plumbing, request recording, and :class:`VeoEmulator`, which ties them together.

``http.server`` rather than a framework, because the faults need what frameworks hide: dropping a
connection without an answer, announcing a length and sending less, closing idle keep-alives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_veo.testing.emulator.backend import Backend, EmulatedJob
from airflow_provider_veo.testing.emulator.bodies import Clip, expected_sha256, video_chunks, video_size
from airflow_provider_veo.testing.emulator.docs_profile import DocsResponses
from airflow_provider_veo.testing.emulator.forms import BodyError, Form, read_body, read_form
from airflow_provider_veo.testing.emulator.models import MAX_BODY_BYTES, VIDEOS_PATH
from airflow_provider_veo.testing.emulator.newapi_profile import NewApiResponses
from airflow_provider_veo.testing.emulator.records import FilePart, RecordedRequest, Recorder
from airflow_provider_veo.testing.emulator.responses import (
    Answer,
    ApiRequest,
    Drop,
    Reply,
    Responses,
    VideoAnswer,
    answer_cdn,
)
from airflow_provider_veo.testing.emulator.scenario import Scenario

#: The ``[veo] min_poll_interval`` of a deployment whose ``veo`` connection is this emulator.
MIN_POLL_INTERVAL = 0.01


class _Server(ThreadingHTTPServer):
    """A threaded server that tracks its open connections, so ``stop()`` can close idle keep-alives."""

    daemon_threads = True
    request_queue_size = 2048

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[_Handler],
        responses: Responses,
        recorder: Recorder,
    ) -> None:
        self.responses = responses
        self.recorder = recorder
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)

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
    """Common plumbing of both listeners: keep-alive HTTP/1.1, recording, no logging."""

    protocol_version = "HTTP/1.1"
    server_version = "veo-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # Headers and body go out as separate writes.
    listener = ""
    server: _Server
    record: RecordedRequest
    #: The record of the request being handled, handed to the recorder's listeners once it is done.
    _pending: RecordedRequest | None = None

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def handle_one_request(self) -> None:
        self._pending = None
        try:
            super().handle_one_request()
        finally:
            if self._pending is not None:
                self.server.recorder.finished(self._pending)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a benchmark makes thousands of requests."""

    def _start_record(self, form: Form | None = None) -> None:
        parts = form.parts if form and form.parts else []
        self.record = RecordedRequest(
            listener=self.listener,
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            form=form.fields if form else [],
            files=[
                FilePart(p.name, p.filename, p.content_type, len(p.data), hashlib.sha256(p.data).hexdigest())
                for p in parts
                if p.filename is not None
            ],
            at=time.time(),
        )
        self.server.recorder.add(self.record)
        self._pending = self.record

    def _reply(self, reply: Reply) -> None:
        if isinstance(reply, Drop):
            self.close_connection = True
        elif isinstance(reply, VideoAnswer):
            self._send_video(reply)
        else:
            self._send(reply)

    def _send(self, answer: Answer) -> None:
        self.record.status = answer.status
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _send_video(self, answer: VideoAnswer) -> None:
        """Stream the job's body, applying its truncation, cut, corruption, pace and length faults.

        A truncated body stops at half and the connection closes; a cut one stops at ``cut_at``, and
        when chunked still ends with the zero chunk, so only a client that checks the content notices.
        A trickled one goes out a byte at a time (until the client hangs up).
        """
        job: EmulatedJob = answer.job
        scenario = job.scenario
        size = video_size(scenario.video_bytes)
        limit = size // 2 if scenario.truncate_download else size
        if answer.cut_at is not None:
            limit = min(limit, answer.cut_at)
        self.record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if answer.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(scenario.announced_bytes or size))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        self.server.responses.backend.count_download(job.id)
        sent = 0
        clip = Clip.of(job.seconds, job.size)
        for chunk in video_chunks(scenario.video_bytes, clip, corrupt=scenario.corrupt_download):
            if sent >= limit:
                break
            piece = chunk[: limit - sent]
            pace = scenario.download_bytes_per_second
            for part in [piece] if pace is None else (piece[i : i + 1] for i in range(len(piece))):
                if pace is not None:
                    time.sleep(1 / pace)
                if answer.chunked:
                    self.wfile.write(b"%x\r\n" % len(part))
                self.wfile.write(part)
                if answer.chunked:
                    self.wfile.write(b"\r\n")
            sent += len(piece)
        if answer.chunked and not scenario.truncate_download:
            self.wfile.write(b"0\r\n\r\n")
        elif sent < size:
            self.close_connection = True


class _ApiHandler(_Handler):
    """The API listener: ``POST /v1/videos``, ``GET /v1/videos/{id}`` and ``GET /v1/videos/{id}/content``."""

    listener = "api"

    def _request(self, form: Form | None = None) -> ApiRequest:
        return ApiRequest(self.command, self.path, self.headers, form or Form())

    def do_POST(self) -> None:
        responses = self.server.responses
        try:
            body = read_body(self.headers, self.rfile, MAX_BODY_BYTES)
        except BodyError as error:
            self._start_record()
            self.close_connection = True  # The rest of the body was not read.
            self._reply(responses.answer_unreadable(self._request(), error.status, error.code, error.message))
            return
        form = read_form(self.headers.get("Content-Type", ""), body)
        self._start_record(form)
        self._reply(responses.answer_post(self._request(form)))

    def do_GET(self) -> None:
        self._start_record()
        self._reply(self.server.responses.answer_get(self._request()))

    def _unsupported(self) -> None:
        try:
            read_body(self.headers, self.rfile, MAX_BODY_BYTES)
        except BodyError:
            self.close_connection = True
        self._start_record()
        self._reply(self.server.responses.answer_other(self._request()))

    do_PUT = do_PATCH = do_DELETE = do_HEAD = _unsupported


class _CdnHandler(_Handler):
    """The listener behind ``video_url``."""

    listener = "cdn"

    def do_GET(self) -> None:
        self._start_record()
        self._reply(answer_cdn(self.server.responses.backend, self.path, self.headers))

    do_HEAD = do_GET


#: The profiles, by the name ``VeoEmulator(server=...)`` and ``--server`` take.
PROFILES: dict[str, type[Responses]] = {"docs": DocsResponses, "new-api": NewApiResponses}


class VeoEmulator:
    """Two local listeners, the API and a CDN, answering like CometAPI's Veo route.

    ``server`` picks the profile: ``"docs"`` answers as ``API.md`` documents the API, ``"new-api"``
    as the gateway behind it really does (``GATEWAY.md``); both share one backend, so scenarios
    mean the same in either. ``id_style`` defaults to the profile's: ``colon`` ids for the docs,
    ``task_`` ids for new-api.

    Scenarios come from three places: the emulator-wide :attr:`scenario` (the default for new jobs;
    setting it also arms its request faults, which then count every API request), the queue of
    :meth:`queue_scenario` (each valid create takes the next one, for that job only), and an
    ``[emu:key=value,...]`` marker in the prompt, applied on top of either for that job only.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        scenario: Scenario | None = None,
        id_style: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        server: str = "docs",
    ) -> None:
        if server not in PROFILES:
            raise ValueError(f"server must be one of {sorted(PROFILES)}, got {server!r}")
        id_style = id_style or ("task" if server == "new-api" else "colon")
        if id_style not in ("colon", "task"):
            raise ValueError(f"id_style must be 'colon' or 'task', got {id_style!r}")
        self.api_key = api_key
        self.id_style = id_style
        self.host = host
        self.server = server
        self._ports = (port, cdn_port)
        self._backend = Backend(scenario or Scenario(), id_style)
        self._recorder = Recorder()
        self._responses: Responses = PROFILES[server](self._backend, self)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> VeoEmulator:
        """Bind both listeners and serve them from background threads."""
        if self._servers:
            raise RuntimeError("the emulator is already running")
        self._servers = [
            _Server((self.host, self._ports[0]), _ApiHandler, self._responses, self._recorder),
            _Server((self.host, self._ports[1]), _CdnHandler, self._responses, self._recorder),
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
        """Environment variables that make ``conn_id`` point at this emulator, and let tasks poll its
        jobs, which finish in a fraction of a second, more often than the 1-second floor of a real API."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(),
            "AIRFLOW__VEO__MIN_POLL_INTERVAL": str(MIN_POLL_INTERVAL),
        }

    # -- scenarios -------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The emulator-wide scenario; assigning one also re-arms its request faults."""
        return self._backend.scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        self._backend.scenario = scenario

    def queue_scenario(self, scenario: Scenario) -> None:
        """Use ``scenario`` for the next valid create call (authenticated, not rate limited, accepted)."""
        self._backend.queue_scenario(scenario)

    # -- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request on both listeners, in arrival order."""
        return self._recorder.all()

    @property
    def posts(self) -> list[RecordedRequest]:
        """Create calls on the API listener, failed ones included."""
        return [
            r
            for r in self.requests
            if r.listener == "api" and r.method == "POST" and urlsplit(r.path).path == VIDEOS_PATH
        ]

    @property
    def jobs(self) -> dict[str, EmulatedJob]:
        """Jobs by id."""
        return self._backend.jobs()

    @property
    def cdn_authorization_attempts(self) -> int:
        """How many CDN requests carried an ``Authorization`` header (and were refused)."""
        return sum(1 for r in self.requests if r.listener == "cdn" and "authorization" in r.headers)

    def on_request(self, listener: Callable[[RecordedRequest], None]) -> None:
        """Call ``listener`` with each request once it has been answered (``status`` final, ``None``
        for a dropped connection), on the thread that served it. ``--record`` and ``--verbose`` use it.
        """
        self._recorder.subscribe(listener)

    def reset_records(self) -> None:
        """Forget recorded requests and CDN authorization attempts; jobs stay."""
        self._recorder.clear()

    def expected_bytes(self, video_id: str) -> int:
        """The size of the job's video as a correct download delivers it."""
        return video_size(self.jobs[video_id].scenario.video_bytes)

    def expected_sha256(self, video_id: str) -> str:
        """The SHA-256 of the job's video as a correct download delivers it (streamed once, then cached)."""
        job = self.jobs[video_id]
        return expected_sha256(job.scenario.video_bytes, Clip.of(job.seconds, job.size))
