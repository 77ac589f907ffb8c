"""Reading a job, with its retries: one suite run against both clients, since both drive one flow.

``sync`` is :meth:`VeoHook.get_video` over requests (mocked with requests-mock), ``async`` is
:meth:`VeoAsyncClient.get_video` over aiohttp (mocked with aioresponses), as the trigger uses it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    VeoAuthenticationError,
    VeoJobNotFoundError,
    VeoTransientError,
    VideoJob,
)
from airflow_provider_veo.hooks import async_client
from airflow_provider_veo.hooks import veo as hook_module
from airflow_provider_veo.hooks.async_client import InFlightLimit
from airflow_provider_veo.hooks.veo import VeoHook

from .conftest import API_KEY, JOB_URL, VIDEO_ID, conn_json, error_json, job_json
from .loopback_api import Answer as Reply
from .loopback_api import Call, LoopbackApi, serving

#: What the mocked API answers, in order: ``(status, body)`` with a dict for JSON and a str for
#: text, ``"refused"`` for a refused connection, ``"reset"`` for a connection dropped mid-request.
Answer = tuple[int, dict[str, Any] | str] | tuple[int, dict[str, Any] | str, dict[str, str]] | str


@dataclass
class Reader:
    """Reads ``VIDEO_ID`` through one client against scripted answers; records what it sent and slept."""

    mode: str
    sleeps: list[float] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    def read(self, answers: list[Answer]) -> VideoJob:
        return self._read_sync(answers) if self.mode == "sync" else asyncio.run(self._read_async(answers))

    def _read_sync(self, answers: list[Answer]) -> VideoJob:
        import requests_mock

        scripted = iter(answers)

        def answer(request: Any, context: Any) -> str:
            self.authorizations.append(request.headers["Authorization"])
            step = next(scripted)
            if step == "refused":
                raise requests.exceptions.ConnectTimeout("refused")
            if step == "reset":
                raise requests.ConnectionError("connection reset")
            status, body, *headers = step
            context.status_code = status
            context.headers.update(headers[0] if headers else {})
            return body if isinstance(body, str) else json.dumps(body)

        with requests_mock.Mocker() as mocker:
            mocker.get(JOB_URL, text=answer)
            return VeoHook().get_video(VIDEO_ID)

    async def _read_async(self, answers: list[Answer]) -> VideoJob:
        scripted = iter(answers)

        def answer(call: Call) -> Reply | str:
            self.authorizations.append(call.headers["Authorization"])
            step = next(scripted)
            if step in ("refused", "reset"):
                return step
            status, body, *headers = step
            extra = headers[0] if headers else {}
            if isinstance(body, str):
                return Reply(status, text=body, headers=extra)
            return Reply(status, json=body, headers=extra)

        with serving(LoopbackApi(handler=answer)):
            async with VeoHook().async_client() as client:
                return await client.get_video(VIDEO_ID)


@pytest.fixture(params=["sync", "async"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    """Each client, with its retry waits recorded instead of slept."""
    reader = Reader(request.param)
    monkeypatch.setattr(hook_module, "time", SimpleNamespace(sleep=reader.sleeps.append))
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds: float) -> None:
        reader.sleeps.append(seconds)
        await real_sleep(0)

    # The client's own waits only: aiohttp and the loopback server sleep(0) in the same loop too.
    monkeypatch.setattr(
        async_client, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": recorded_sleep})
    )
    yield reader


def test_reads_the_job_with_the_key(reader: Reader) -> None:
    job = reader.read([(200, job_json(status="in_progress", progress=55))])
    assert (job.video_id, job.status, job.progress) == (VIDEO_ID, "in_progress", 55)
    assert reader.authorizations == [f"Bearer {API_KEY}"]
    assert reader.sleeps == []


def test_honours_retry_after(reader: Reader) -> None:
    answers: list[Answer] = [(429, error_json("too many"), {"Retry-After": "3"}), (200, job_json())]
    assert reader.read(answers).video_id == VIDEO_ID
    assert len(reader.sleeps) == 1 and 3.0 <= reader.sleeps[0] < 3.01


@pytest.mark.parametrize("status", [500, 502, 503, 504, 524])
def test_retries_server_errors_json_or_not(reader: Reader, status: int) -> None:
    answers: list[Answer] = [
        (status, error_json("upstream trouble")),
        (status, "<html>gateway</html>"),
        (200, job_json(status="completed")),
    ]
    assert reader.read(answers).status == "completed"
    assert len(reader.sleeps) == 2 and all(0 <= s <= 0.01 for s in reader.sleeps)


def test_retries_dropped_and_refused_connections(reader: Reader) -> None:
    assert reader.read(["reset", "refused", (200, job_json())]).video_id == VIDEO_ID
    assert len(reader.authorizations) == 3 and len(reader.sleeps) == 2


def test_backoff_grows_exponentially(reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(retry_base_delay=1.0, max_retries=4))
    monkeypatch.setattr(api.retry.random, "uniform", lambda low, high: high)  # the top of each jitter range
    reader.read(["reset"] * 4 + [(200, job_json())])
    assert reader.sleeps == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize("max_retries", [0, 2])
def test_gives_up_after_max_retries(
    reader: Reader, monkeypatch: pytest.MonkeyPatch, max_retries: int
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", conn_json(max_retries=max_retries))
    with pytest.raises(VeoTransientError, match="no available channel") as info:
        reader.read([(503, error_json("no available channel", "model_not_found"))] * (max_retries + 1))
    assert info.value.status_code == 503
    assert len(reader.authorizations) == max_retries + 1
    assert len(reader.sleeps) == max_retries


def test_401_fails_at_once_with_the_apis_words(reader: Reader) -> None:
    with pytest.raises(VeoAuthenticationError, match=r"Invalid token \(request id: z\)"):
        reader.read([(401, error_json("Invalid token (request id: z)"))])
    assert len(reader.authorizations) == 1 and reader.sleeps == []


def test_not_found_is_typed_and_carries_the_request_id_header(reader: Reader) -> None:
    flat = {"code": "task_not_exist", "message": "task_not_exist", "data": None}
    with pytest.raises(VeoJobNotFoundError, match=r"\(request id: 2026abc\)") as info:
        reader.read([(400, flat, {"X-Oneapi-Request-Id": "2026abc"})])
    assert info.value.request_id == "2026abc" and info.value.code == "task_not_exist"
    assert reader.sleeps == []


def test_an_error_only_body_reads_as_a_failed_job(reader: Reader) -> None:
    job = reader.read([(200, {"error": {"message": "upstream refused", "type": "x"}, "id": VIDEO_ID})])
    assert job.status == "failed" and job.error_message == "upstream refused"


def test_the_key_never_reaches_errors_or_logs(reader: Reader, logs: Any) -> None:
    def echo(status: int) -> Answer:
        return (status, error_json(f"token Bearer {API_KEY} rejected (request id: e-1)"))

    with pytest.raises(VeoAuthenticationError) as info:
        reader.read([echo(503), echo(429), echo(401)])
    assert "(request id: e-1)" in str(info.value)
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.args)
    assert len(logs.lines("warning")) == 2, "each retry is logged"
    assert "(request id: e-1)" in logs.text
    assert API_KEY not in logs.text


def test_the_key_is_masked_through_airflows_masker(reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    masked: list[str] = []

    async def amask(secret: str) -> None:
        masked.append(secret)

    monkeypatch.setattr(hook_module, "_mask", masked.append)
    monkeypatch.setattr(hook_module, "_amask", amask)
    reader.read([(200, job_json())])
    assert masked == [API_KEY]


def _peak_in_flight(readers: int, polls_every: float | None) -> int:
    """Most requests at the API at once while ``readers`` clients of one loop read 3 times each."""
    api = LoopbackApi(Reply(json=job_json(), delay=0.01))

    async def many_readers() -> None:
        async def one_reader() -> None:
            async with VeoHook().async_client(polls_every=polls_every) as client:
                for _ in range(3):
                    await client.get_video(VIDEO_ID)

        await asyncio.gather(*(one_reader() for _ in range(readers)))

    with serving(api):
        asyncio.run(many_readers())
    assert api.call_count == 3 * readers
    return api.peak


def test_requests_in_flight_never_exceed_the_shared_cap() -> None:
    """Many triggers of one triggerer share one session, and never have more than the cap in flight."""
    readers = 5 * hook_module.MAX_REQUESTS_IN_FLIGHT
    # 320 triggers polling 10 times a second at 10 ms a GET would want 2 x 3,200 x 0.01 = 64 at once.
    # The bound, not the peak: how many are in flight at once depends on how busy the machine is.
    assert _peak_in_flight(readers, polls_every=0.1) <= hook_module.MAX_REQUESTS_IN_FLIGHT
    # Readers that announce no polling rate get the floor, whatever their number.
    assert _peak_in_flight(readers, polls_every=None) <= hook_module.MIN_REQUESTS_IN_FLIGHT


@pytest.mark.parametrize(
    ("triggers", "poll_interval", "latency", "limit"),
    [
        (1_000, 15.0, 0.05, 8),  # 67 GETs/s x 50 ms = 3.3 in flight, x 2: the floor
        (1_000, 15.0, 0.5, 64),  # x 500 ms = 33, x 2 = 67: the ceiling
        (500, 15.0, 0.5, 34),  # 33 GETs/s x 500 ms x 2
        (10_000, 15.0, 0.05, 64),  # 667 GETs/s x 50 ms x 2 = 67: the ceiling
        (10, 15.0, 5.0, 8),
    ],
)
def test_the_limit_follows_demand_and_latency(
    triggers: int, poll_interval: float, latency: float, limit: int
) -> None:
    flight = InFlightLimit()
    assert flight.limit == async_client.MIN_REQUESTS_IN_FLIGHT  # until an answer has been timed
    for _ in range(triggers):
        flight.add_demand(1 / poll_interval)
    flight.active = 1
    flight.release(latency)
    assert flight.limit == limit
    assert flight.latency == latency
    for _ in range(triggers):
        flight.add_demand(-1 / poll_interval)
    assert flight.limit == async_client.MIN_REQUESTS_IN_FLIGHT


def test_the_latency_estimate_moves_gradually() -> None:
    flight = InFlightLimit()
    flight.add_demand(1_000 / 15)
    for seconds in (0.05, 5.0):
        flight.active = 1
        flight.release(seconds)
    assert flight.latency is not None and 0.5 < flight.latency < 0.6  # one slow answer moves it a tenth
    assert flight.limit == async_client.MAX_REQUESTS_IN_FLIGHT


def test_a_waiter_cancelled_after_its_turn_gives_the_slot_back() -> None:
    async def scenario() -> tuple[int, int]:
        flight = InFlightLimit()
        for _ in range(flight.limit):
            await flight.acquire()
        waiting = asyncio.ensure_future(flight.acquire())
        await asyncio.sleep(0)
        flight.release(None)  # hands the slot to the waiter...
        waiting.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(waiting, return_exceptions=True)
        return flight.active, flight.limit

    active, limit = asyncio.run(scenario())
    assert active == limit - 1


def test_polls_queued_as_the_demand_falls_are_not_stranded() -> None:
    """Triggers that finish take their demand away; the polls already queued keep the limit up, so
    the last jobs of a batch are not read at the floor's pace."""

    async def scenario() -> tuple[int, int]:
        flight = InFlightLimit()
        flight.add_demand(1_000 / 15)
        flight.active = 1
        flight.release(0.5)  # 1,000 triggers at 15 s and 500 ms: the ceiling
        held = [asyncio.ensure_future(flight.acquire()) for _ in range(flight.limit)]
        queued = [asyncio.ensure_future(flight.acquire()) for _ in range(30)]
        await asyncio.sleep(0)
        flight.add_demand(-990 / 15)  # most triggers have had their event and left
        for _ in held:
            flight.release(0.5)
        await asyncio.sleep(0)
        return sum(q.done() for q in queued), flight.active

    served, active = asyncio.run(scenario())
    assert served == 30 and active == 30  # every queued poll has its slot, none waits behind a floor of 8


def test_triggers_starting_together_read_the_connection_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted triggerer's burst reads each connection once (its secrets backends are walked once)."""
    reads: list[str] = []
    real = VeoHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[VeoHook], conn_id: str) -> Any:
        reads.append(conn_id)
        await asyncio.sleep(0.01)
        return await real(cls, conn_id)

    monkeypatch.setattr(VeoHook, "aget_connection", classmethod(counting))

    async def start(count: int) -> None:
        async def one() -> None:
            async with VeoHook().async_client(polls_every=15) as client:
                await client.get_video(VIDEO_ID)

        await asyncio.gather(*(one() for _ in range(count)))

    async def scenario() -> None:
        await start(50)
        assert reads == ["veo_default"]
        monkeypatch.setattr(async_client, "SETTINGS_TTL", 0.0)  # expired: the next trigger reads again
        await start(1)

    with serving(LoopbackApi(Reply(json=job_json()))):
        asyncio.run(scenario())
    assert reads == ["veo_default"] * 2


def test_a_failed_connection_read_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> list[str]:
        outcomes = []
        for password in (None, API_KEY):
            conn = json.loads(conn_json())
            conn.pop("password")
            if password:
                conn["password"] = password
            monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps(conn))
            try:
                async with VeoHook().async_client() as client:
                    outcomes.append((await client.get_video(VIDEO_ID)).video_id)
            except api.VeoInputError as exc:
                outcomes.append(exc.field)
        return outcomes

    with serving(LoopbackApi(Reply(json=job_json()))):
        assert asyncio.run(scenario()) == ["password", VIDEO_ID]
