"""The steps every wait for a job shares: poll once, wait in the worker, or hand the wait to the triggerer.

The create-and-wait operator, the sensor and the trigger all poll through :func:`poll_once` (or
:func:`apoll_once` in the event loop), so a "not found yet" or an outage means the same thing to
each, and :class:`~airflow_provider_veo.api.JobWatch` decides what to do with it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_veo.api import (
    JobEvent,
    JobWatch,
    Logger,
    PollOutcome,
    VeoJobNotFoundError,
    VeoModelAccessError,
    VeoTransientError,
    VideoJob,
)

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_veo.hooks.veo import VeoAsyncClient, VeoHook

#: Extra time the deferral gets beyond the trigger's own deadline, so the trigger reports the timeout.
DEFERRAL_GRACE = timedelta(seconds=60)


def poll_once(hook: VeoHook, video_id: str) -> PollOutcome:
    """Read the job once; an outage, a "not found" or a model-limited key's refusal is an outcome for the
    watch, not an exception."""
    try:
        return hook.get_video(video_id)
    except (VeoTransientError, VeoJobNotFoundError, VeoModelAccessError) as exc:
        return exc


async def apoll_once(client: VeoAsyncClient, video_id: str) -> PollOutcome:
    """The event-loop twin of :func:`poll_once`."""
    try:
        return await client.get_video(video_id)
    except (VeoTransientError, VeoJobNotFoundError, VeoModelAccessError) as exc:
        return exc


def time_left(operator: BaseOperator, context: Context, timeout: float) -> float:
    """Seconds a wait may take: ``timeout``, cut to what remains of the task's ``execution_timeout``.

    Airflow does not enforce ``execution_timeout`` while a task is deferred (apache/airflow#69678),
    so the trigger's own deadline has to carry it, as the dbt Cloud and OpenAI providers do.
    """
    limit = operator.execution_timeout
    started = getattr(context.get("ti"), "start_date", None)
    if limit is None or started is None:
        return timeout
    elapsed = float((datetime.now(timezone.utc) - started).total_seconds())
    return max(0.0, min(timeout, float(limit.total_seconds()) - elapsed))


def defer_to_trigger(
    operator: BaseOperator,
    context: Context,
    *,
    video_id: str,
    veo_conn_id: str,
    poll_interval: float,
    timeout: float,
    visible_by: float | None,
    resume_kwargs: dict[str, Any] | None = None,
) -> None:
    """Free the worker slot: wait for the job in :class:`VeoTaskTrigger`, resuming ``execute_complete``
    (with ``resume_kwargs`` besides the event).

    The trigger's deadline is ``timeout`` or what remains of ``execution_timeout``, whichever ends first.
    """
    from airflow_provider_veo.triggers.veo import VeoTaskTrigger

    seconds = time_left(operator, context, timeout)
    operator.defer(
        trigger=VeoTaskTrigger(
            video_id=video_id,
            veo_conn_id=veo_conn_id,
            poll_interval=poll_interval,
            end_time=time.time() + seconds,
            visible_by=visible_by,
        ),
        method_name="execute_complete",
        kwargs=resume_kwargs,
        timeout=timedelta(seconds=seconds) + DEFERRAL_GRACE,
    )


def wait_in_worker(
    hook: VeoHook,
    job: VideoJob,
    *,
    poll_interval: float,
    timeout: float,
    log: Logger,
    visible_by: float | None,
) -> JobEvent:
    """Poll in the worker (``deferrable=False``) with the trigger's own decisions, until the job ends."""
    watch = JobWatch(job.video_id, poll_interval, time.time() + timeout, log, visible_by=visible_by)
    outcome: PollOutcome = job
    while not isinstance(step := watch.after_poll(outcome), dict):
        time.sleep(step)
        outcome = poll_once(hook, job.video_id)
    return step
