"""The API for the async client's unit tests: a real aiohttp server on a loopback port, in the test's loop.

The client keeps its real session (headers, timeouts, pool); only its connector is swapped for one
that resolves the API's host (``api.test``) to the loopback server and refuses every other host, so
the requests cross a real socket. Each request is answered by a handler the test gives (or by a
script): an :class:`Answer`, ``"reset"`` (the connection is dropped without an answer) or
``"refused"`` (the connect fails, as when nothing listens). The connector asks for the answer as
the request leaves, so a refusal is decided before anything is sent, and tags the request with it;
the server serves the tagged answer after its ``delay``, counting the requests it holds at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from airflow_provider_veo.hooks import async_client

from .conftest import BASE_URL

API_HOST = BASE_URL.split("://", 1)[1]


@dataclass
class Answer:
    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds the server holds the request before answering.
    delay: float = 0.0


@dataclass
class Call:
    """A request as the server (or, for a refused connect, the connector) saw it."""

    method: str
    path: str
    host: str
    headers: dict[str, str]


Reply = Answer | str
Handler = Callable[[Call], Reply | Awaitable[Reply]]


class LoopbackApi:
    """Scripted answers (``answers``, in order, the last repeated) or a ``handler``; ``calls`` records."""

    def __init__(self, *answers: Reply, handler: Handler | None = None) -> None:
        self.calls: list[Call] = []
        self.sessions: list[aiohttp.ClientSession] = []
        self._answers = list(answers)
        self._handler = handler
        self._tagged: dict[str, Reply] = {}
        self.port = 0
        #: Requests the server holds now, and the most it held at once.
        self.in_flight = self.peak = 0

    @property
    def call_count(self) -> int:
        return len(self.calls)

    async def _reply(self, call: Call) -> Reply:
        self.calls.append(call)
        if self._handler is not None:
            reply = self._handler(call)
            return await reply if asyncio.iscoroutine(reply) else reply  # type: ignore[return-value]
        if not self._answers:
            raise AssertionError(f"no answer left for {call.method} {call.path}")
        return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]

    def _tag(self, reply: Reply) -> str:
        tag = str(len(self.calls))
        self._tagged[tag] = reply
        return tag

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        reply = self._tagged.pop(request.headers[_TAG])
        if reply == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing more is written on this connection
        assert isinstance(reply, Answer), reply
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(reply.delay)
        finally:
            self.in_flight -= 1
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
        body = json.dumps(reply.json if reply.json is not None else {})
        return web.Response(
            status=reply.status, text=body, content_type="application/json", headers=reply.headers
        )


_TAG = "X-Loopback-Reply"


class _LoopbackResolver(AbstractResolver):
    def __init__(self, api: LoopbackApi) -> None:
        self._api = api

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if host != API_HOST:
            raise OSError(errno.EHOSTUNREACH, f"the async client must not reach {host}")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self._api.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


class _Connector(aiohttp.TCPConnector):
    """The client's connector, resolving ``api.test`` to the loopback server; refuses when told to."""

    def __init__(self, api: LoopbackApi, **kwargs: Any) -> None:
        super().__init__(resolver=_LoopbackResolver(api), **kwargs)
        self._api = api

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        call = Call(req.method, req.url.path_qs, req.url.host, dict(req.headers))
        reply = await self._api._reply(call)
        if reply == "refused":
            raise aiohttp.ClientConnectorError(
                req.connection_key, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            )
        req.headers[_TAG] = self._api._tag(reply)
        return await super().connect(req, traces, timeout)


@contextlib.contextmanager
def serving(api: LoopbackApi) -> Iterator[LoopbackApi]:
    """Route the async client's sessions to ``api`` while the block runs (the server starts with the
    first session, in the loop that makes it)."""
    real_new_session = async_client._new_session
    runners: list[web.AppRunner] = []

    def connector(context: Any) -> aiohttp.TCPConnector:
        return _Connector(api, limit=async_client.MAX_REQUESTS_IN_FLIGHT, ssl=context)

    def new_session(settings: Any, context: Any) -> aiohttp.ClientSession:
        session = real_new_session(settings, context)
        api.sessions.append(session)
        return session

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", api._serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        api.port = runner.addresses[0][1]

    real_enter = async_client.SharedClient.__aenter__
    real_exit = async_client.SharedClient.__aexit__
    # Clients inside ``async with``, counted before their first await, and the server's start, shared:
    # many clients entering together start one server, and it stops only once the last has left,
    # however the machine's load interleaves their steps.
    users = 0
    starting: list[asyncio.Future[None]] = []

    async def release() -> None:
        nonlocal users
        users -= 1
        if not users and runners:
            runner = runners.pop()
            starting.clear()
            api.port = 0
            await runner.cleanup()

    async def enter(self: Any) -> Any:
        nonlocal users
        users += 1
        try:
            if not starting:
                starting.append(asyncio.ensure_future(start()))
            await asyncio.shield(starting[0])
            return await real_enter(self)
        except BaseException:
            await release()
            raise

    async def leave(self: Any, *exc_info: object) -> None:
        try:
            await real_exit(self, *exc_info)
        finally:
            await release()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(async_client, "_connector", connector)
        patch.setattr(async_client, "_new_session", new_session)
        patch.setattr(async_client.SharedClient, "__aenter__", enter)
        patch.setattr(async_client.SharedClient, "__aexit__", leave)
        yield api
