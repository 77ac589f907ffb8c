"""Reading jobs from the event loop: one aiohttp session per event loop and connection settings.

A triggerer runs hundreds or thousands of triggers in one event loop. They share one
:class:`aiohttp.ClientSession` (a small pool of keep-alive connections, one SSL context) and one
:class:`InFlightLimit`, which bounds how many requests they have at the API at once.
Nothing here blocks the loop: the SSL context is built in a thread, once per process, and the
connection is read by :meth:`~airflow_provider_veo.hooks.veo.VeoHook.async_client` with
``aget_connection``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from airflow_provider_veo import api
from airflow_provider_veo.api import VeoError, VeoTransientError, VideoJob
from airflow_provider_veo.hooks.settings import CONNECT_TIMEOUT, REQUEST_ID_HEADER, Settings

#: The fewest requests one event loop may have in flight per connection: what a handful of triggers
#: get whatever their demand, and what all of them get before the API's latency has been measured.
MIN_REQUESTS_IN_FLIGHT = 8
#: The most, ever: a triggerer restarted with 1,000 waiting videos never opens more connections to the
#: API than this. 1,000 triggers polling every 15 s at 500 ms a GET need 34 in flight (67 GETs/s).
MAX_REQUESTS_IN_FLIGHT = 64
#: The limit allows this many times the rate the triggers need (Little's law: requests in flight =
#: rate x latency), so polls keep to their schedule through each trigger's phase, while a burst of
#: first polls (triggers started together) is spread no more than this limit needs.
HEADROOM = 2.0
#: Weight of the newest answer's duration in the latency estimate (an exponential moving average).
_LATENCY_WEIGHT = 0.1


class InFlightLimit:
    """At most :attr:`limit` requests at once, the limit following the demand and the API's latency.

    ``limit = clamp(HEADROOM x demand x latency, MIN_REQUESTS_IN_FLIGHT, MAX_REQUESTS_IN_FLIGHT)``,
    where *demand* is the polls per second the users announced (each trigger ``1 / poll_interval``)
    and *latency* a moving average of the time answers took. The rate it lets through is then about
    ``limit / latency``: twice what the triggers need, however slow the API gets, never more
    connections than ``MAX_REQUESTS_IN_FLIGHT``. Waiters are served first come, first served, and
    never see the limit shrink: when triggers finish and take their demand away, the polls already
    queued (the last round of a batch) go out at the pace they were queued at, not at the floor's.
    """

    __slots__ = ("_latency", "_waiters", "active", "demand", "limit", "peak")

    def __init__(self) -> None:
        self.limit = MIN_REQUESTS_IN_FLIGHT
        self.active = 0
        #: The most requests that were ever in flight at once (for tests and benchmarks).
        self.peak = 0
        #: Polls per second announced by the users.
        self.demand = 0.0
        self._latency: float | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def latency(self) -> float | None:
        """The moving average of answers' durations in seconds, ``None`` before the first answer."""
        return self._latency

    def add_demand(self, polls_per_second: float) -> None:
        self.demand = max(0.0, self.demand + polls_per_second)
        self._resize()

    async def acquire(self) -> None:
        if self.active < self.limit and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by _wake, which has taken the slot on its behalf
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(None)  # granted, then cancelled before it could use the slot
            else:
                self._waiters.remove(waiter)
            raise

    def release(self, seconds: float | None) -> None:
        """Give a slot back; ``seconds``: how long the request took, to follow the API's latency."""
        self.active -= 1
        if seconds is not None:
            previous = self._latency
            self._latency = seconds if previous is None else previous + _LATENCY_WEIGHT * (seconds - previous)
            self._resize()
        else:
            self._wake()

    def _take(self) -> None:
        self.active += 1
        if self.active > self.peak:
            self.peak = self.active

    def _resize(self) -> None:
        wanted = HEADROOM * self.demand * (self._latency or 0.0)
        limit = MIN_REQUESTS_IN_FLIGHT if wanted <= MIN_REQUESTS_IN_FLIGHT else math.ceil(wanted)
        if self._waiters:
            limit = max(limit, self.limit)
        self.limit = min(limit, MAX_REQUESTS_IN_FLIGHT)
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.active < self.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)


#: How long one read of a connection serves the triggers that start after it in the same event loop:
#: 1,000 triggers started together (a triggerer restart) read their connection once, not 1,000 times
#: (each read walks Airflow's secrets backends). A trigger keeps the key it started with, whatever
#: the TTL, so this adds at most this many seconds to how long a rotated key is still used.
SETTINGS_TTL = 30.0

_SETTINGS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Future[Settings]]]
] = weakref.WeakKeyDictionary()  # when each was read, and the read


async def shared_settings(conn_id: str, read: Callable[[], Awaitable[Settings]]) -> Settings:
    """The settings of ``conn_id`` for this event loop: ``read()`` once per :data:`SETTINGS_TTL`,
    shared by every caller meanwhile (those that arrive while it runs wait for it). A failed read
    is not kept: the next caller reads again."""
    loop = asyncio.get_running_loop()
    cache = _SETTINGS.setdefault(loop, {})
    entry = cache.get(conn_id)
    if entry is None or loop.time() - entry[0] >= SETTINGS_TTL:
        reading = asyncio.ensure_future(read())
        entry = cache[conn_id] = (loop.time(), reading)

        def forget_failure(done: asyncio.Future[Settings]) -> None:
            if (done.cancelled() or done.exception() is not None) and cache.get(conn_id) is entry:
                del cache[conn_id]

        reading.add_done_callback(forget_failure)
    settings = entry[1]
    if settings.done():
        return settings.result()
    # Shielded: a caller cancelled while waiting must not cancel the read the others wait for.
    return await asyncio.shield(settings)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One SSL context for every session: building one costs tens of milliseconds of CPU."""
    return ssl.create_default_context()


@dataclass
class SharedSession:
    """The session of one event loop and connection settings, its limit, and how many use it."""

    session: aiohttp.ClientSession
    limit: InFlightLimit = field(default_factory=InFlightLimit)
    users: int = 0


#: Per event loop, the session of each connection's settings.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Settings, SharedSession]] = (
    weakref.WeakKeyDictionary()
)


class SharedClient:
    """``async with``: a :class:`VeoAsyncClient` over the session of this event loop and connection
    settings, made when the first user arrives and closed when the last one leaves.

    Sharing lets the triggers share a few keep-alive connections (at most
    :data:`MAX_REQUESTS_IN_FLIGHT`) instead of each holding its own client and opening a new
    connection, TLS handshake included, at every poll: less CPU, memory and garbage per poll, and
    fewer connections on the API. ``read`` reads the connection (once per :data:`SETTINGS_TTL` for
    all users, see :func:`shared_settings`); ``polls_per_second`` is the demand this user adds to
    the limit. What :meth:`VeoHook.async_client` returns: one small object per trigger.

    A class rather than an ``@asynccontextmanager`` generator: lighter, and a trigger whose ``run()``
    is dropped after its first event (``dag.test()`` does so) is closed in one piece when the loop
    shuts down.
    """

    __slots__ = ("_conn_id", "_demand", "_read", "_sessions", "_settings", "_shared", "_warn")

    def __init__(
        self,
        conn_id: str,
        read: Callable[[], Awaitable[Settings]],
        warn: Callable[..., None],
        polls_per_second: float = 0.0,
    ) -> None:
        self._conn_id = conn_id
        self._read = read
        self._warn = warn
        self._demand = polls_per_second

    async def __aenter__(self) -> VeoAsyncClient:
        settings = self._settings = await shared_settings(self._conn_id, self._read)
        self._sessions = sessions = _SHARED.setdefault(asyncio.get_running_loop(), {})
        shared = sessions.get(settings)
        if shared is None:
            context = await asyncio.to_thread(_ssl_context)
            shared = sessions.get(settings)  # Another user may have made it while this one waited.
            if shared is None:
                shared = sessions[settings] = SharedSession(_new_session(settings, context))
        shared.users += 1
        shared.limit.add_demand(self._demand)
        self._shared = shared
        return VeoAsyncClient(shared.session, settings, self._warn, shared.limit)

    async def __aexit__(self, *exc_info: object) -> None:
        shared = self._shared
        shared.users -= 1
        shared.limit.add_demand(-self._demand)
        if shared.users == 0 and self._sessions.get(self._settings) is shared:
            del self._sessions[self._settings]
            await shared.session.close()


def _connector(context: ssl.SSLContext) -> aiohttp.TCPConnector:
    """A pool as large as the limit's ceiling, so aiohttp's own queue never holds a request."""
    return aiohttp.TCPConnector(limit=MAX_REQUESTS_IN_FLIGHT, ssl=context)


def _new_session(settings: Settings, context: ssl.SSLContext) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(
        connector=_connector(context),
        headers=settings.auth_headers,
        timeout=aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=settings.timeout),
        cookie_jar=aiohttp.DummyCookieJar(),  # the API sets none; a jar would be walked at every request
        trust_env=False,
    )
    # aiohttp resends an idempotent request once, by itself, when its connection drops. The retry flow
    # (api.request_flow) must be the only retry loop: it counts the attempts and paces them. No public
    # switch exists; aiohttp's own test client turns it off the same way (a unit test pins the count).
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


def _aiohttp_failure(exc: Exception, url: str) -> VeoTransientError:
    """No answer: only a refused or timed-out connect proves nothing arrived."""
    return api.connection_error(
        f"No answer from {url} ({type(exc).__name__}). Check the connection's Base URL (`host`).",
        job_may_exist=not isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)),
    )


class VeoAsyncClient:
    """Reads jobs over the shared session; made by :meth:`VeoHook.async_client`."""

    __slots__ = ("_limit", "_session", "_settings", "_url", "_warn")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: Settings,
        warn: Callable[..., None],
        limit: InFlightLimit | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._warn = warn
        self._limit = limit or InFlightLimit()
        #: A trigger reads the same URL at every poll: it is built once (video id, URL, path).
        self._url: tuple[str, URL, str] | None = None

    async def get_video(self, video_id: str) -> VideoJob:
        """Read a job's status: the sync hook's :func:`api.request_flow`, driven in the event loop.

        The flow is started at the first failure only: an answered poll costs no generator.
        """
        if self._url is None or self._url[0] != video_id:
            path = api.video_path(video_id)
            self._url = (video_id, URL(self._settings.base_url + path, encoded=True), path)
        _, url, path = self._url
        flow = None
        while True:
            error = await self._get(url)
            if isinstance(error, VideoJob):
                if flow is not None:
                    flow.close()
                return error
            if flow is None:
                flow = api.request_flow(self._settings.retry, "GET")
                next(flow)
            step = flow.send(self._settings.redact(error))  # raises the error once retrying is over
            assert isinstance(step, api.Sleep)
            self._warn(
                "GET %s failed (%s); attempt %d in %.1f s",
                api.shown(path),
                step.error,
                step.next_attempt,
                step.seconds,
            )
            await asyncio.sleep(step.seconds)
            next(flow)

    async def _get(self, url: URL) -> VideoJob | VeoError:
        """One GET within the limit: the job, or the error to hand the retry flow."""
        limit = self._limit
        await limit.acquire()
        started = time.monotonic()
        took: float | None = None
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                body = await response.read()
            took = time.monotonic() - started
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return _aiohttp_failure(exc, str(url))
        finally:
            limit.release(took)
        if 200 <= response.status < 300:
            try:
                return self._settings.parse_job(body)
            except VeoTransientError as exc:  # a garbled body: retried like an error status
                return exc
        return _error_from(response, body)


def _error_from(response: aiohttp.ClientResponse, body: bytes) -> VeoError:
    """The typed error of an unsuccessful answer, with its ``Retry-After`` and request id."""
    headers: Any = response.headers
    return api.error_from_response(
        response.status, body, headers.get("Retry-After"), request_id=headers.get(REQUEST_ID_HEADER)
    )
