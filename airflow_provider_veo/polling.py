"""Reading a job while waiting for it: what the trigger, the sensor and the operators all stand on.

Each read goes through :func:`poll_once` (or :func:`apoll_once` in the triggerer's event loop), so a
"not found yet" or an outage means the same thing to every wait, and
:class:`~airflow_provider_veo.api.JobWatch` decides what to do with it. :func:`wait_in_worker` is the
whole wait of a task that does not defer. Handing the wait to the triggerer is :mod:`.waiting`'s.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

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
    from airflow_provider_veo.hooks.veo import VeoAsyncClient, VeoHook


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
