"""Hand a task's wait for its job to the triggerer, within the time the task has left.

Reading the job while waiting, in the worker or in the trigger, is :mod:`.polling`'s; this module only
builds the deferral, so the trigger's module never imports it back.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

#: Extra time the deferral gets beyond the trigger's own deadline, so the trigger reports the timeout.
DEFERRAL_GRACE = timedelta(seconds=60)


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
    Callers have just read the job (the create's answer, a resumed job's read, the sensor's check), so
    the trigger's first poll comes one interval from now rather than at once.
    """
    from airflow_provider_veo.triggers.veo import VeoTaskTrigger

    seconds = time_left(operator, context, timeout)
    now = time.time()
    operator.defer(
        trigger=VeoTaskTrigger(
            video_id=video_id,
            veo_conn_id=veo_conn_id,
            poll_interval=poll_interval,
            end_time=now + seconds,
            visible_by=visible_by,
            status_read_at=now,
        ),
        method_name="execute_complete",
        kwargs=resume_kwargs,
        timeout=timedelta(seconds=seconds) + DEFERRAL_GRACE,
    )
