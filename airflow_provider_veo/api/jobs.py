"""A video job as CometAPI describes it, the polling decisions taken on it, and the trigger's events.

Free of I/O, so the deferrable trigger, the sensor and the synchronous waits share one copy of
what a status means and when to stop.
"""

from __future__ import annotations

import enum
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, TypedDict

from airflow_provider_veo.api.errors import (
    VeoAPIError,
    VeoError,
    VeoGenerationFailedError,
    VeoJobNotFoundError,
    VeoModelAccessError,
    VeoTimeoutError,
    VeoTransientError,
    optional_str,
    shown,
)

#: Polling defaults: a 6-minute job costs at most 25 GETs after its create.
DEFAULT_POLL_INTERVAL = 15.0
DEFAULT_TIMEOUT = 60 * 60.0
#: Each wait's polls come up to this share of an interval early or late, the same share every time.
SCHEDULE_PHASE = 0.1


class JobState(str, enum.Enum):
    """A job's status folded onto what a caller acts on. Spellings vary across CometAPI's models."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


_STATES: Mapping[str, JobState] = {
    # ``unknown`` is the gateway's own status of a job it has not polled upstream yet.
    **dict.fromkeys(("queued", "pending", "submitted", "not_start", "waiting", "unknown"), JobState.PENDING),
    **dict.fromkeys(("in_progress", "processing", "running", "generating"), JobState.RUNNING),
    **dict.fromkeys(("completed", "success", "succeeded", "succeed"), JobState.SUCCEEDED),
    **dict.fromkeys(("failed", "failure", "error", "cancelled", "canceled"), JobState.FAILED),
}


def job_state(status: str) -> JobState:
    """Fold a status onto a :class:`JobState`, ignoring case. Unknown statuses are not terminal."""
    return _STATES.get(status.strip().lower(), JobState.UNKNOWN)


def _optional_int(value: object) -> int | None:
    """A number from an int, a float or text such as ``"100%"`` (the gateway's internal view)."""
    try:
        return None if value is None or value == "" else int(float(str(value).strip().rstrip("%")))
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class VideoJob:
    """A job as CometAPI describes it; create and retrieve answer the same shape."""

    video_id: str
    status: str
    progress: int | None = None
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    video_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: int | None = None
    completed_at: int | None = None

    @property
    def state(self) -> JobState:
        return job_state(self.status)

    @classmethod
    def from_json(cls, payload: object) -> VideoJob:
        """Parse a job object, tolerating the variations seen across CometAPI's routes."""
        if isinstance(payload, dict) and "id" not in payload and isinstance(payload.get("data"), dict):
            payload = payload["data"]
        if not isinstance(payload, dict):
            raise VeoAPIError(f"CometAPI answered with something that is not a job: {str(payload)[:200]}")
        video_id = payload.get("id") or payload.get("task_id")
        if not isinstance(video_id, str) or not video_id:
            raise VeoAPIError(f"CometAPI's answer has no job id: {json.dumps(payload)[:200]}")
        error = payload.get("error")
        error_code = error_message = None
        if isinstance(error, dict):
            error_code = optional_str(error.get("code")) or optional_str(error.get("type"))
            error_message = optional_str(error.get("message"))
        elif error:
            error_message = str(error)
        # The gateway's internal task view (some 2026 releases) says why in ``fail_reason``.
        error_message = error_message or optional_str(payload.get("fail_reason"))
        status = optional_str(payload.get("status"))
        if status is None:
            # The gateway answers a job whose upstream failed with only its error, and HTTP 200.
            status = "failed" if error else "unknown"
        return cls(
            video_id=video_id,
            status=status,
            progress=_optional_int(payload.get("progress")),
            model=optional_str(payload.get("model")),
            seconds=optional_str(payload.get("seconds")),
            size=optional_str(payload.get("size")),
            video_url=optional_str(payload.get("video_url")),
            error_code=error_code,
            error_message=error_message,
            created_at=_optional_int(payload.get("created_at")),
            completed_at=_optional_int(payload.get("completed_at") or payload.get("finished_at")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, for trigger events and XCom."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoJob:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]

    def failure(self) -> VeoGenerationFailedError:
        return VeoGenerationFailedError(self.video_id, self.status, self.error_code, self.error_message)


class Logger(Protocol):
    """What :class:`JobWatch` logs through: a stdlib logger or Airflow's ``self.log``."""

    # Positional-only: Airflow's structlog logger names its first parameter ``event``.
    def info(self, msg: str, /, *args: object) -> None: ...
    def warning(self, msg: str, /, *args: object) -> None: ...


#: What one poll of a job can end in, as :class:`JobWatch` takes it.
PollOutcome = VideoJob | VeoTransientError | VeoJobNotFoundError | VeoModelAccessError

#: How long after its create a job answered "not found" is taken as "not stored yet": the gateway
#: answers the create before it stores the task.
DEFAULT_VISIBILITY_GRACE = 60.0


class JobWatch:
    """The polling decisions the trigger and the synchronous waits share, free of any I/O.

    Each poll's outcome goes in; out comes either the seconds to sleep before the next poll or the
    final event. A change of status is logged, and of progress too unless ``log_progress`` is off (the
    trigger logs progress only when debugging: thousands of triggers share one process); the final
    status too unless ``log_outcome`` is off (a trigger's event says it, and Airflow's triggerer logs
    every event it fires); an unknown status is warned of once.
    "Not found" counts as "not stored yet" until ``visible_by`` (epoch seconds; ``None``: never).

    Polls are due on a schedule counted from ``schedule_from`` (epoch seconds; ``None``: when the first
    outcome comes in): the k-th at k intervals plus this watch's phase, a fixed share of an interval
    between -10% and +10%. Waits that start together (a triggerer restart) poll spread around each
    interval rather than in lock-step or all late; a slow or late poll delays none after it.
    """

    def __init__(
        self,
        video_id: str,
        poll_interval: float,
        end_time: float,
        log: Logger,
        clock: Callable[[], float] = time.time,
        *,
        visible_by: float | None = None,
        schedule_from: float | None = None,
        log_progress: bool = True,
        log_outcome: bool = True,
    ) -> None:
        self.video_id = video_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.visible_by = visible_by
        self._log = log
        self._log_progress = log_progress
        self._log_outcome = log_outcome
        self._clock = clock
        self._last: tuple[str, int | None] | None = None
        self._unknown_statuses: set[str] | None = None  # made on the first unknown status
        self._said_not_visible = False
        self._schedule_from = schedule_from
        self._slot = 0  # the schedule's slot of the last poll handed out; 0: the status read before it
        self._phase = random.uniform(-SCHEDULE_PHASE, SCHEDULE_PHASE)

    def after_poll(self, outcome: PollOutcome) -> float | JobEvent:
        """Seconds to sleep before polling again, or the event payload once there is an answer."""
        if isinstance(outcome, (VeoJobNotFoundError, VeoModelAccessError)):
            if self.visible_by is None or self._clock() >= self.visible_by:
                return error_event(self.video_id, self._not_visible(outcome))
            if not self._said_not_visible:
                self._said_not_visible = True
                self._log.info(
                    "Video %s is not visible yet (CometAPI stores a job just after answering its create); "
                    "polling on",
                    self._shown_id,
                )
        elif isinstance(outcome, VeoTransientError):
            # The job is paid for and still rendering: an outage is waited out until the deadline.
            self._log.warning("Video %s: could not read the job (%s); polling on", self._shown_id, outcome)
        elif outcome.state.is_terminal:
            if self._log_outcome:
                self._describe(outcome)
            return job_event(outcome)
        else:
            self._describe(outcome)
        seconds_left = self.end_time - self._clock()
        if seconds_left <= 0:
            return timeout_event(self.video_id)
        return min(self._until_next_poll(), seconds_left)

    def until_first_poll(self) -> float:
        """Seconds before the first poll of a wait whose job was read at ``schedule_from``: until its next
        slot, never more than an interval and the phase, even if the reader's clock ran ahead of ours."""
        if self._schedule_from is None:
            return 0.0
        longest = self.poll_interval * (1.0 + SCHEDULE_PHASE)
        return min(self._until_next_slot(self._schedule_from, minimum=0.0), longest)

    def _until_next_poll(self) -> float:
        """Seconds until the next poll is due: the next slot of the schedule after the last poll's.
        A slot whose time has passed while a poll was slow is skipped, not made up, and a poll that
        came late is followed after at least half an interval, so an outage never ends in a burst.
        The gaps are one interval (the first from the status read, 0.9 to 1.1 of one), and a job of
        k intervals costs at most k + 1 polls after that read.
        """
        if self._schedule_from is None:
            self._schedule_from = self._clock()
        return self._until_next_slot(self._schedule_from, minimum=self.poll_interval * 0.5)

    def _until_next_slot(self, origin: float, *, minimum: float) -> float:
        now = self._clock()
        interval = self.poll_interval
        self._slot = max(self._slot + 1, math.floor((now - origin) / interval) + 1)
        due = origin + interval * (self._slot + self._phase)
        return max(due - now, minimum)

    @property
    def _shown_id(self) -> str:
        return shown(self.video_id)

    def _not_visible(self, error: VeoJobNotFoundError | VeoModelAccessError) -> VeoAPIError:
        after = " after the grace window for new jobs" if self.visible_by is not None else ""
        kwargs: dict[str, Any] = {
            "status_code": error.status_code,
            "code": error.code,
            "request_id": error.request_id,
        }
        if isinstance(error, VeoModelAccessError):
            return VeoModelAccessError(
                f"CometAPI refuses this key the status of video {self._shown_id}{after} ({error}). Use a "
                "key allowed the job's model, or lift the key's model limit in the CometAPI console.",
                **kwargs,
            )
        return VeoJobNotFoundError(
            f"CometAPI does not know video {self._shown_id}{after} ({error}). Check that the connection "
            "points at the account and base URL that created it; a job the gateway never stored is "
            "refunded.",
            **kwargs,
        )

    def _describe(self, job: VideoJob) -> None:
        current = (job.status, job.progress)
        last = self._last
        if current == last:
            return
        self._last = current
        if not self._log_progress and last is not None and last[0] == job.status:
            return  # only the progress moved
        progress = "" if job.progress is None else f", progress {job.progress}%"
        if job.state is not JobState.UNKNOWN:
            self._log.info("Video %s: status %r%s", shown(job.video_id), job.status, progress)
        elif self._unknown_statuses is None or job.status not in self._unknown_statuses:
            self._unknown_statuses = (self._unknown_statuses or set()) | {job.status}
            self._log.warning(
                "Video %s: status %r%s is not one this provider knows; treating it as still running",
                shown(job.video_id),
                job.status,
                progress,
            )


# Events: what a trigger hands back to the task. Everything the resumed task needs travels in them,
# since ``dag.test()`` drops the kwargs given to ``defer()``.


class JobEvent(TypedDict):
    """What a wait ends in: the trigger's event payload, and the worker-side waits' result alike."""

    status: Literal["success", "failed", "timeout", "error"]
    video_id: str
    #: The terminal job (:meth:`VideoJob.to_dict`) for ``success`` and ``failed``.
    job: dict[str, Any] | None
    message: str


def job_event(job: VideoJob) -> JobEvent:
    """The event for a terminal job."""
    if job.state is JobState.SUCCEEDED:
        return {"status": "success", "video_id": job.video_id, "job": job.to_dict(), "message": ""}
    return {"status": "failed", "video_id": job.video_id, "job": job.to_dict(), "message": str(job.failure())}


def timeout_event(video_id: str) -> JobEvent:
    return {
        "status": "timeout",
        "video_id": video_id,
        "job": None,
        "message": f"Video {shown(video_id)} did not finish before the deadline; the job may still be "
        "running.",
    }


def error_event(video_id: str, error: VeoError) -> JobEvent:
    """The event for a job that cannot be read at all (bad key, unknown id)."""
    return {"status": "error", "video_id": video_id, "job": None, "message": str(error)}


def job_from_event(event: Mapping[str, Any]) -> VideoJob:
    """The completed job an event carries; any other outcome is raised as the matching error."""
    status = event.get("status")
    if status == "success":
        return VideoJob.from_dict(event["job"])
    if status == "failed":
        raise VideoJob.from_dict(event["job"]).failure()
    if status == "timeout":
        raise VeoTimeoutError(event.get("message") or "timed out")
    raise VeoAPIError(event.get("message") or f"unexpected event {dict(event)!r}")
