"""What the fault suites share: running the generate operator as a worker does, and judging its outcome.

``test_faults.py`` (the documented API) and ``test_gateway.py`` (the gateway CometAPI runs) drive
the same operator the same way and check the same things: what came of it, how many POSTs, what
is left at the destination.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator
from airflow_provider_veo.testing import VeoEmulator

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

MODES = ("poke", "deferrable")
MAY_HAVE = "may have received the request"
NOT_RESENT = "It is not sent again"


def use_connection(monkeypatch: pytest.MonkeyPatch, emu: VeoEmulator, **extra: Any) -> None:
    """``veo_default`` pointing at ``emu``, with retries that wait (almost) nothing."""
    extra = {"retry_base_delay": 0.01, **extra}
    conn = {"conn_type": "veo", "host": emu.url, "password": emu.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps(conn))


class FakeTI:
    """The task instance a worker hands ``execute()``: XComs are kept in memory."""

    task_id = "generate_video"
    map_index = -1
    try_number = 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.pushed.get(key)


@dataclass
class Outcome:
    video: dict[str, Any] | None
    error: BaseException | None


def run_trigger(trigger: Any) -> dict[str, Any]:
    """The trigger's real ``run()`` on an event loop; it must fire exactly one event."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), timeout=60))
    assert len(events) == 1, events
    return events[0]


def generate(out: Path, mode: str = "poke", prompt: str = "a fox in the snow", **kwargs: Any) -> Outcome:
    """``VeoGenerateVideoOperator`` as a worker runs it; deferred: trigger, then ``execute_complete``."""
    kwargs = {"destination": f"{out}/", "poll_interval": 0.05, "timeout": 30, **kwargs}
    operator = VeoGenerateVideoOperator(
        task_id="generate_video", prompt=prompt, deferrable=mode == "deferrable", **kwargs
    )
    context: Any = {"ti": FakeTI()}
    try:
        try:
            return Outcome(operator.execute(context), None)
        except TaskDeferred as deferred:
            assert mode == "deferrable"
            event = run_trigger(deferred.trigger)
            return Outcome(getattr(operator, deferred.method_name)(context, event=event), None)
    except Exception as exc:
        return Outcome(None, exc)


def via(mode: str) -> str:
    return "generate, deferred" if mode == "deferrable" else "generate, poke"


def leftovers(folder: Path) -> list[str]:
    """Everything under ``folder``, hidden ``.part`` files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def assert_video(outcome: Outcome, emu: VeoEmulator, out: Path) -> str:
    """The download succeeded, is intact, and is the only thing at the destination."""
    assert outcome.error is None, f"{type(outcome.error).__name__}: {outcome.error}"
    assert outcome.video is not None
    path = Path(outcome.video["uri"])
    assert path.parent == out.resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert outcome.video["sha256"] == digest == emu.expected_sha256(outcome.video["video_id"])
    assert outcome.video["bytes"] == path.stat().st_size == emu.expected_bytes(outcome.video["video_id"])
    assert leftovers(out) == [path.name]
    return "the verified MP4"


def assert_nothing_left(out: Path) -> str:
    assert leftovers(out) == []
    return "nothing"


def failure(outcome: Outcome, *fragments: str, final: bool) -> str:
    """The failure's message holds every fragment; ``final`` means no Airflow retry. Returns the row text."""
    error = outcome.error
    assert error is not None, f"expected a failure, got {outcome.video}"
    message = str(error)
    for fragment in fragments:
        assert fragment in message, message
    if final:
        assert isinstance(error, AirflowFailException), type(error)
        kind = "fails at once"
    else:
        assert not isinstance(error, AirflowFailException), type(error)
        kind = f"fails, retryable ({type(error).__name__})"
    return kind + ": " + ", ".join(f"“{fragment}”" for fragment in fragments)


def job_gets(emu: VeoEmulator) -> list[Any]:
    """API GETs (retrieve and /content), in arrival order."""
    return [r for r in emu.requests if r.listener == "api" and r.method == "GET"]
