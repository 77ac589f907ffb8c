"""Wait for a Veo job in the triggerer, so no worker slot is held while the video renders."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_veo import api
from airflow_provider_veo.api import JobWatch, VeoError
from airflow_provider_veo.polling import apoll_once

_HOOK_MODULE = "airflow_provider_veo.hooks.veo"
_CLIENT_MODULE = "airflow_provider_veo.hooks.async_client"


#: The hook module once an import of it has finished. Not ``sys.modules``: that holds a module while
#: another thread is still executing it, and a trigger starting then would find it half-initialised.
_hooks: ModuleType | None = None


def _import_hooks() -> ModuleType:
    """The hook module, with the async client's (aiohttp's) imported too: ~0.1 s the first time.

    Concurrent callers wait on Python's import lock for the first to finish.
    """
    global _hooks
    importlib.import_module(_CLIENT_MODULE)
    _hooks = importlib.import_module(_HOOK_MODULE)
    return _hooks


class VeoTaskTrigger(BaseTrigger):
    """Poll one job until it ends or ``end_time`` passes, then fire exactly one event.

    It only reads (GETs), so running it twice, as the triggerer may after a restart, is harmless.
    Its kwargs are primitives: the API key is looked up again from the connection, never serialized.

    :param video_id: the job to wait for.
    :param veo_conn_id: the ``veo`` connection to read it with.
    :param poll_interval: seconds between polls (each trigger's schedule shifted by up to +-10% of one).
    :param end_time: epoch seconds after which the trigger gives up with a ``timeout`` event.
    :param visible_by: epoch seconds until which "not found" means the job was created moments ago
        and is not stored yet; ``None`` believes "not found" at once.
    :param status_read_at: epoch seconds when the deferring task last read the job (its create's
        answer, a sensor's check): the polls' schedule counts from it and the first comes one interval
        later, also after a triggerer restart. ``None``: poll at once and count from the start.
    """

    def __init__(
        self,
        video_id: str,
        veo_conn_id: str = "veo_default",
        poll_interval: float = api.DEFAULT_POLL_INTERVAL,
        end_time: float | None = None,
        visible_by: float | None = None,
        status_read_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is not typed
        self.video_id = video_id
        self.veo_conn_id = veo_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time) if end_time is not None else time.time() + api.DEFAULT_TIMEOUT
        self.visible_by = float(visible_by) if visible_by is not None else None
        self.status_read_at = float(status_read_at) if status_read_at is not None else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "video_id": self.video_id,
                "veo_conn_id": self.veo_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "visible_by": self.visible_by,
                "status_read_at": self.status_read_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.time()  # before the import: a burst's polls are due from when each trigger began
        # Imported in a thread, never on the loop; once loaded, no thread hop for the next trigger.
        hooks = _hooks if _hooks is not None else await asyncio.to_thread(_import_hooks)
        # Changes of status are logged; a change of progress alone only when debugging (at 1,000s of
        # triggers, a log line per poll would cost more CPU than the poll itself), and the final status
        # not at all: Airflow's triggerer logs the event, which carries it.
        debugging = self.log.isEnabledFor(logging.DEBUG)
        watch = JobWatch(
            self.video_id,
            self.poll_interval,
            self.end_time,
            self.log,
            visible_by=self.visible_by,
            schedule_from=started if self.status_read_at is None else self.status_read_at,
            log_progress=debugging,
            log_outcome=debugging,
        )
        try:
            hook = hooks.VeoHook(veo_conn_id=self.veo_conn_id)
            async with hook.async_client(polls_every=self.poll_interval) as client:
                if self.status_read_at is not None:
                    await asyncio.sleep(min(watch.until_first_poll(), max(0.0, self.end_time - time.time())))
                while True:
                    step = watch.after_poll(await apoll_once(client, self.video_id))
                    if isinstance(step, dict):
                        yield TriggerEvent(step)  # type: ignore[no-untyped-call]
                        return
                    await asyncio.sleep(step)
        except VeoError as exc:
            yield TriggerEvent(api.error_event(self.video_id, exc))  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """There is no cancel endpoint: say which job keeps running (and billing) so it can be reconciled."""
        self.log.warning(
            "The task waiting for video %s was stopped by a user. CometAPI has no cancel endpoint for Veo: "
            "the job goes on running and is billed; reconcile it by this id.",
            api.shown(self.video_id),
        )
