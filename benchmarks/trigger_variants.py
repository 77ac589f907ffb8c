"""The triggers the triggerer benchmark runs side by side, built on the provider's public API only.

``provider`` is :class:`~airflow_provider_veo.triggers.veo.VeoTaskTrigger` as shipped (aiohttp, one
session per loop, the adaptive in-flight limit). The others are minimal triggers written for this
comparison: ``httpx-shared`` is the provider's previous design (one ``httpx.AsyncClient`` per event
loop shared by the triggers, 8 requests in flight, each trigger's request built once, every change
of progress logged); ``aiohttp-bare`` one shared ``aiohttp`` session and nothing else (no limit, no
retries, no key scrubbing), the floor for this library; and the patterns other providers use: a
``requests`` session called in the coroutine (``sync``) or through ``asyncio.to_thread``
(``thread``), and one ``httpx.AsyncClient`` per trigger (``client-per-trigger``). All of them decide
with :class:`~airflow_provider_veo.api.JobWatch`, so they poll at the same cadence and yield the same
events; ``idle`` keeps that cadence without any request, to price the harness itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
import httpx
import requests
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_veo import api
from airflow_provider_veo.api import JobWatch, VideoJob
from airflow_provider_veo.triggers.veo import VeoTaskTrigger

#: The variants, for ``bench_triggers.py --variant``; tables.py names them.
VARIANTS = ("provider", "httpx-shared", "aiohttp-bare", "client-per-trigger", "sync", "thread", "idle")
#: The old provider's cap on requests in flight, which ``httpx-shared`` keeps.
HTTPX_SHARED_IN_FLIGHT = 8


def connection() -> tuple[str, str]:
    """The base URL and key of ``AIRFLOW_CONN_VEO_DEFAULT``, as the comparison triggers read them."""
    conn = json.loads(os.environ["AIRFLOW_CONN_VEO_DEFAULT"])
    return conn["host"], conn["password"]


class _ComparisonTrigger(BaseTrigger):
    """A trigger of this benchmark: its attributes are its kwargs, so ``serialize`` is generic."""

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", dict(vars(self)))


class _Response(Protocol):
    """What the polling loop needs of an answer; ``requests`` and ``httpx`` responses both have it."""

    def raise_for_status(self) -> object: ...

    def json(self) -> Any: ...


class _PollingTrigger(_ComparisonTrigger):
    """Polls one job over HTTP until JobWatch yields its event; a subclass opens the client and GETs.

    No retries and no error events: the benchmark's emulator answers every request, and a failure is
    reported by the harness as a wrong or missing event.
    """

    def __init__(
        self, video_id: str, base_url: str, api_key: str, poll_interval: float, end_time: float
    ) -> None:
        super().__init__()
        self.video_id = video_id
        self.base_url = base_url
        self.api_key = api_key
        self.poll_interval = poll_interval
        self.end_time = end_time

    async def client(self, stack: contextlib.AsyncExitStack) -> Any:
        """Open this trigger's client on ``stack``, which closes it when ``run`` ends."""
        raise NotImplementedError

    async def fetch(self, client: Any, url: str) -> _Response:
        """One GET of ``url``: the part the patterns differ in."""
        raise NotImplementedError

    #: Whether a change of progress alone is logged (the old provider did; VeoTaskTrigger does not).
    log_progress = True

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = JobWatch(
            self.video_id,
            self.poll_interval,
            self.end_time,
            self.log,
            schedule_from=time.time(),  # as VeoTaskTrigger without a status read: poll at once
            log_progress=self.log_progress,
        )
        url = self.base_url + api.video_path(self.video_id)
        async with contextlib.AsyncExitStack() as stack:
            client = await self.client(stack)
            while True:
                response = await self.fetch(client, url)
                response.raise_for_status()
                step = watch.after_poll(VideoJob.from_json(response.json()))
                if isinstance(step, dict):
                    yield TriggerEvent(step)
                    return
                await asyncio.sleep(step)


class _RequestsTrigger(_PollingTrigger):
    """Poll with a ``requests`` session, as a trigger built on a synchronous hook does."""

    async def client(self, stack: contextlib.AsyncExitStack) -> requests.Session:
        session = stack.enter_context(requests.Session())
        session.headers["Authorization"] = f"Bearer {self.api_key}"
        return session


class SyncRequestsTrigger(_RequestsTrigger):
    """(a) a blocking ``requests`` call inside the coroutine."""

    async def fetch(self, client: requests.Session, url: str) -> requests.Response:
        return client.get(url, timeout=60)


class ThreadRequestsTrigger(_RequestsTrigger):
    """(b) the same call pushed to the default executor with ``asyncio.to_thread``."""

    async def fetch(self, client: requests.Session, url: str) -> requests.Response:
        return await asyncio.to_thread(client.get, url, timeout=60)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One SSL context per process, as VeoTaskTrigger's shared client has, so (c) differs only in sharing.

    Otherwise each new client would build its own, tens of milliseconds of CPU on the event loop, and
    the comparison would price that rather than one client per trigger.
    """
    return ssl.create_default_context()


class ClientPerTriggerTrigger(_PollingTrigger):
    """(c) one ``httpx.AsyncClient`` per trigger, its request built at every poll.

    Each trigger has its own connection pool; an idle httpx connection expires after 5 s, so at a
    poll interval of 10 s every poll opens a new connection (over HTTPS with a TLS handshake).
    """

    async def client(self, stack: contextlib.AsyncExitStack) -> httpx.AsyncClient:
        verify = await asyncio.to_thread(_ssl_context)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return await stack.enter_async_context(httpx.AsyncClient(headers=headers, timeout=60, verify=verify))

    async def fetch(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        return await client.get(url)


class _SharedPerLoop:
    """One client per event loop for every trigger of a variant, as VeoTaskTrigger shares its session."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = await self._make()
        return self._clients[loop]


async def _shared_httpx() -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
    base_url, api_key = connection()
    client = httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        timeout=httpx.Timeout(60.0, connect=10.0),
        verify=await asyncio.to_thread(_ssl_context),
        limits=httpx.Limits(
            max_connections=HTTPX_SHARED_IN_FLIGHT, max_keepalive_connections=HTTPX_SHARED_IN_FLIGHT
        ),
    )
    return client, asyncio.Semaphore(HTTPX_SHARED_IN_FLIGHT)


_HTTPX = _SharedPerLoop(_shared_httpx)


class SharedHttpxTrigger(_PollingTrigger):
    """(before) VeoTaskTrigger's previous design: one shared ``httpx.AsyncClient``, 8 requests in flight."""

    async def client(self, stack: contextlib.AsyncExitStack) -> Any:
        client, slots = await _HTTPX.get()
        return client, slots, client.build_request("GET", api.video_path(self.video_id))

    async def fetch(self, client: Any, url: str) -> httpx.Response:
        http, slots, request = client
        async with slots:
            response = await http.send(request)
        await response.aread()
        return response


async def _shared_aiohttp() -> aiohttp.ClientSession:
    _, api_key = connection()
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=await asyncio.to_thread(_ssl_context)),
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
    )


_AIOHTTP = _SharedPerLoop(_shared_aiohttp)


class _AiohttpAnswer:
    """An aiohttp answer read whole, with the two methods the polling loop uses."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise RuntimeError(f"HTTP {self.status}")

    def json(self) -> Any:
        return json.loads(self.body)


class BareAiohttpTrigger(_PollingTrigger):
    """One shared ``aiohttp.ClientSession`` and nothing else: the library's floor for this pattern."""

    log_progress = False

    async def client(self, stack: contextlib.AsyncExitStack) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession = await _AIOHTTP.get()
        return session

    async def fetch(self, client: aiohttp.ClientSession, url: str) -> _AiohttpAnswer:
        async with client.get(url) as response:
            return _AiohttpAnswer(response.status, await response.read())


class IdleTrigger(_ComparisonTrigger):
    """Calibration: the same cadence and events with no HTTP at all, to price the harness itself."""

    def __init__(self, video_id: str, poll_interval: float, done_at: float) -> None:
        super().__init__()
        self.video_id = video_id
        self.poll_interval = poll_interval
        self.done_at = done_at

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while time.time() < self.done_at:
            await asyncio.sleep(self.poll_interval * random.uniform(1.0, 1.1))
        job = VideoJob(video_id=self.video_id, status="completed", progress=100)
        yield TriggerEvent(api.job_event(job))


_POLLING: dict[str, type[_PollingTrigger]] = {
    "httpx-shared": SharedHttpxTrigger,
    "aiohttp-bare": BareAiohttpTrigger,
    "sync": SyncRequestsTrigger,
    "thread": ThreadRequestsTrigger,
    "client-per-trigger": ClientPerTriggerTrigger,
}


def make_trigger(
    variant: str, video_id: str, poll_interval: float, end_time: float, done_at: float
) -> BaseTrigger:
    """One trigger of ``variant`` for ``video_id``; ``done_at`` is when the job ends (``idle`` only)."""
    if variant == "idle":
        return IdleTrigger(video_id, poll_interval, done_at)
    if variant == "provider":
        return VeoTaskTrigger(video_id=video_id, poll_interval=poll_interval, end_time=end_time)
    base_url, api_key = connection()
    return _POLLING[variant](video_id, base_url, api_key, poll_interval, end_time)
