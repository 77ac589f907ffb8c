"""The steps every wait for a job shares: poll once, and hand the wait to the triggerer.

The create-and-wait operator, the sensor and the trigger all poll through :func:`poll_once` (or
:func:`apoll_once` in the event loop), so a "not found yet" or an outage means the same thing to
each, and :class:`~airflow_provider_veo.api.JobWatch` decides what to do with it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

from airflow_provider_veo.api import PollOutcome, VeoJobNotFoundError, VeoTransientError

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from airflow_provider_veo.hooks.veo import VeoAsyncClient, VeoHook

#: Extra time the deferral gets beyond the trigger's own deadline, so the trigger reports the timeout.
DEFERRAL_GRACE = timedelta(seconds=60)


def poll_once(hook: VeoHook, video_id: str) -> PollOutcome:
    """Read the job once; an outage or a "not found" is an outcome for the watch, not an exception."""
    try:
        return hook.get_video(video_id)
    except (VeoTransientError, VeoJobNotFoundError) as exc:
        return exc


async def apoll_once(client: VeoAsyncClient, video_id: str) -> PollOutcome:
    """The event-loop twin of :func:`poll_once`."""
    try:
        return await client.get_video(video_id)
    except (VeoTransientError, VeoJobNotFoundError) as exc:
        return exc


def defer_to_trigger(
    operator: BaseOperator,
    *,
    video_id: str,
    veo_conn_id: str,
    poll_interval: float,
    timeout: float,
    visible_by: float | None,
) -> None:
    """Free the worker slot: wait for the job in :class:`VeoTaskTrigger`, resuming ``execute_complete``."""
    from airflow_provider_veo.triggers.veo import VeoTaskTrigger

    operator.defer(
        trigger=VeoTaskTrigger(
            video_id=video_id,
            veo_conn_id=veo_conn_id,
            poll_interval=poll_interval,
            end_time=time.time() + timeout,
            visible_by=visible_by,
        ),
        method_name="execute_complete",
        timeout=timedelta(seconds=timeout) + DEFERRAL_GRACE,
    )
