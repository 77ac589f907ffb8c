"""The emulator's state: jobs, the scenarios in force, and the request faults still to inject.

Everything here is guarded by one lock and knows nothing of HTTP: the responses ask it what to do
(create, advance, fail this request?) and render its answers in their profile's shapes. Jobs are
handed out as snapshots taken under the lock, so a rendering never mixes two states of a job.
"""

from __future__ import annotations

import collections
import copy
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from airflow_provider_veo.testing.emulator.bodies import random_alnum
from airflow_provider_veo.testing.emulator.scenario import (
    MODEL_UNAVAILABLE,
    POST_FAILURES_WITH_JOB,
    TERMINAL_STATUSES,
    Scenario,
)


@dataclass
class EmulatedJob:
    """The emulator's state of one job."""

    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created_at: int
    scenario: Scenario
    status: str = "queued"
    progress: int = 0
    completed_at: int | None = None
    #: Retrieve GETs answered for this job.
    polls: int = 0
    #: Video bodies served for this job (``/content`` and the CDN together).
    downloads: int = 0
    started: float = field(default_factory=time.monotonic, repr=False)
    faults: Faults | None = field(default=None, repr=False)
    expired_left: int = field(default=0, repr=False)
    hidden_left: int = field(default=0, repr=False)
    denied_left: int = field(default=0, repr=False)
    broken_left: list[str] = field(default_factory=list, repr=False)


class Faults:
    """The request faults of one scenario, used up as requests arrive (callers hold the backend lock)."""

    def __init__(self, scenario: Scenario) -> None:
        self.latency = scenario.latency
        self.slow_left = scenario.slow_first_n
        self.slow_seconds = scenario.slow_seconds
        self.rate_limit_left = scenario.rate_limit
        self.retry_after = scenario.retry_after
        self.server_errors = collections.deque(scenario.server_errors)
        self.resets_left = scenario.reset_gets
        self.post_failure = scenario.post_failure
        self.denied_left = scenario.model_access_denied_polls

    def any_armed(self) -> bool:
        return bool(
            self.latency
            or self.slow_left
            or self.rate_limit_left
            or self.server_errors
            or self.resets_left
            or self.post_failure is not None
        )

    def delay(self) -> float:
        seconds = self.latency
        if self.slow_left > 0:
            self.slow_left -= 1
            seconds += self.slow_seconds
        return seconds

    def take_rate_limit(self) -> float | None:
        """The Retry-After to answer 429 with, or ``None`` when this request is not rate limited."""
        if self.rate_limit_left > 0:
            self.rate_limit_left -= 1
            return self.retry_after
        return None

    def take_get_fault(self) -> int | str | None:
        """``"reset"``, an HTTP status, or ``None``."""
        if self.resets_left > 0:
            self.resets_left -= 1
            return "reset"
        if self.server_errors:
            return self.server_errors.popleft()
        return None


class CreateFailure(Exception):
    """A create call the scenarios in force make fail: ``failure`` is ``Scenario.post_failure``'s value.

    ``job`` is the job created anyway (``reset_after_create``, ``html_502``), else ``None``.
    """

    def __init__(self, failure: int | str, retry_after: float, job: EmulatedJob | None = None) -> None:
        super().__init__(failure)
        self.failure = failure
        self.retry_after = retry_after
        self.job = job


class Backend:
    """Jobs by id, the scenario queue, and the fault counters, behind one lock."""

    def __init__(self, scenario: Scenario, id_style: str) -> None:
        self.id_style = id_style
        self._lock = threading.Lock()
        self._scenario = scenario
        self._faults = Faults(scenario)
        self._queue: collections.deque[Scenario] = collections.deque()
        self._failed_prompts: set[str] = set()
        self._jobs: dict[str, EmulatedJob] = {}
        self._tokens: dict[str, tuple[str, bool]] = {}
        self._cdn_authorization_attempts = 0

    # -- scenarios -------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self._scenario = scenario
            self._faults = Faults(scenario)

    def queue_scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self._queue.append(scenario)

    # -- inspection ------------------------------------------------------------------------

    def jobs(self) -> dict[str, EmulatedJob]:
        """The live jobs by id (not snapshots: tests read their counters as they change)."""
        with self._lock:
            return dict(self._jobs)

    def job(self, video_id: str) -> EmulatedJob | None:
        """A snapshot of the job, or ``None`` when the id is unknown."""
        with self._lock:
            job = self._jobs.get(video_id)
            return copy.copy(job) if job else None

    @property
    def cdn_authorization_attempts(self) -> int:
        with self._lock:
            return self._cdn_authorization_attempts

    def reset_cdn_authorization_attempts(self) -> None:
        with self._lock:
            self._cdn_authorization_attempts = 0

    # -- request faults --------------------------------------------------------------------

    def _job_faults(self, video_id: str | None) -> Faults | None:
        job = self._jobs.get(video_id) if video_id is not None else None
        return job.faults if job else None

    def delay(self, video_id: str | None) -> float:
        """Seconds to wait before answering a request (about this job, if any)."""
        with self._lock:
            faults = self._job_faults(video_id)
            return self._faults.delay() + (faults.delay() if faults else 0.0)

    def take_rate_limit(self, video_id: str | None) -> float | None:
        """The Retry-After of a 429 for this request, or ``None`` when it is not rate limited."""
        with self._lock:
            retry_after = self._faults.take_rate_limit()
            faults = self._job_faults(video_id)
            if retry_after is None and faults:
                retry_after = faults.take_rate_limit()
            return retry_after

    def take_get_fault(self, video_id: str | None) -> int | str | None:
        """``"reset"``, an HTTP status to answer this GET with, or ``None``."""
        with self._lock:
            fault = self._faults.take_get_fault()
            faults = self._job_faults(video_id)
            if fault is None and faults:
                fault = faults.take_get_fault()
            return fault

    def count_cdn_authorization(self) -> None:
        with self._lock:
            self._cdn_authorization_attempts += 1

    # -- jobs ------------------------------------------------------------------------------

    def _new_id(self, model: str) -> str:
        if self.id_style == "task":
            return "task_" + random_alnum(32)
        return f"{model}:{int(time.time())}-{random_alnum(10)}"

    def create(
        self, model: str, prompt: str, seconds: str, size: str, overrides: dict[str, Any]
    ) -> EmulatedJob:
        """Create a job and return its snapshot, or raise :class:`CreateFailure` as the scenarios say.

        The emulator-wide ``post_failure`` is used up by the first create; a queued scenario's by the
        create that takes it; a marker's by the first create carrying that exact prompt, so a retried
        task is not refused forever.
        """
        with self._lock:
            gone = replace(self._queue[0] if self._queue else self._scenario, **overrides).model_unavailable
            if gone is not None:  # a dead model: refused every time, nothing created, nothing used up
                raise CreateFailure(MODEL_UNAVAILABLE[gone], self._faults.retry_after)
            failure, self._faults.post_failure = self._faults.post_failure, None
            retry_after = self._faults.retry_after
            if failure is not None and failure not in POST_FAILURES_WITH_JOB:
                raise CreateFailure(failure, retry_after)
            queued = self._queue.popleft() if self._queue else None
            faults = Faults(replace(queued or Scenario(), **overrides))
            marker_failure_unused = queued is not None or prompt not in self._failed_prompts
            if failure is None and faults.post_failure is not None and marker_failure_unused:
                failure, retry_after = faults.post_failure, faults.retry_after
                self._failed_prompts.add(prompt)
            if failure is not None and failure not in POST_FAILURES_WITH_JOB:
                raise CreateFailure(failure, retry_after)
            scenario = replace(queued or self._scenario, **overrides)
            job = EmulatedJob(
                id=scenario.video_id or self._new_id(model),
                model=model,
                prompt=prompt,
                seconds=seconds,
                size=size,
                created_at=int(time.time()),
                scenario=scenario,
                faults=faults if faults.any_armed() else None,
                expired_left=scenario.expired_url_fetches,
                hidden_left=scenario.not_visible_polls,
                denied_left=scenario.model_access_denied_polls,
                broken_left=list(scenario.broken_polls),
            )
            self._jobs[job.id] = job
            if failure is not None:
                raise CreateFailure(failure, retry_after, copy.copy(job))
            return copy.copy(job)

    def take_not_visible(self, video_id: str) -> bool:
        """Whether this GET of the job still finds it not stored (``not_visible_polls``)."""
        with self._lock:
            job = self._jobs[video_id]
            if job.hidden_left > 0:
                job.hidden_left -= 1
                return True
            return False

    def take_access_denied(self, video_id: str) -> bool:
        """Whether this GET is refused to a model-limited key (``model_access_denied_polls``): the job's
        own count, or for an id the emulator does not know, the emulator-wide scenario's."""
        with self._lock:
            job = self._jobs.get(video_id)
            counter = job if job is not None else self._faults
            if counter.denied_left > 0:
                counter.denied_left -= 1
                return True
            return False

    def take_broken_poll(self, video_id: str) -> str | None:
        """The broken body this retrieve answers with (``broken_polls``), or ``None``."""
        with self._lock:
            job = self._jobs[video_id]
            return job.broken_left.pop(0) if job.broken_left else None

    def poll(self, video_id: str) -> EmulatedJob:
        """Count a retrieve of the job, move it along, and return its snapshot."""
        with self._lock:
            job = self._jobs[video_id]
            self._advance(job, poll=True)
            return copy.copy(job)

    def look(self, video_id: str) -> EmulatedJob:
        """The job's snapshot after moving it along the clock, without counting a retrieve."""
        with self._lock:
            job = self._jobs[video_id]
            self._advance(job, poll=False)
            return copy.copy(job)

    def _advance(self, job: EmulatedJob, *, poll: bool) -> None:
        """Move the job along: one step per retrieve GET, or by the clock (callers hold the lock)."""
        if poll:
            job.polls += 1
        if job.status in TERMINAL_STATUSES:
            return
        scenario = job.scenario
        if scenario.seconds_until_done is not None:
            elapsed = time.monotonic() - job.started
            fraction = elapsed / scenario.seconds_until_done if scenario.seconds_until_done > 0 else 1.0
            if fraction >= 1:
                self._finish(job)
            elif fraction >= 0.2:
                job.status, job.progress = "in_progress", max(job.progress, min(99, int(fraction * 100)))
            return
        if not poll:
            return
        if job.polls > scenario.polls_until_done:
            self._finish(job)
        elif job.polls > 1:
            job.status, job.progress = "in_progress", (job.polls - 1) * 100 // scenario.polls_until_done

    @staticmethod
    def _finish(job: EmulatedJob) -> None:
        job.status = job.scenario.outcome
        job.completed_at = int(time.time())
        if job.status == "completed":
            job.progress = 100

    def count_download(self, video_id: str) -> None:
        with self._lock:
            self._jobs[video_id].downloads += 1

    # -- CDN tokens ------------------------------------------------------------------------

    def issue_token(self, video_id: str) -> str:
        """A fresh token for a ``video_url`` of the job: each retrieve of a completed job gets one."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (video_id, False)
        return token

    def redeem_token(self, token: str) -> EmulatedJob | Literal["expired"] | None:
        """The job a CDN token serves, ``"expired"``, or ``None`` for an unknown token.

        The first ``expired_url_fetches`` fetches of a job's URLs expire the URL they used, for good.
        """
        with self._lock:
            if token not in self._tokens:
                return None
            video_id, expired = self._tokens[token]
            job = self._jobs[video_id]
            if not expired and job.expired_left > 0:
                job.expired_left -= 1
                self._tokens[token] = (video_id, True)
                expired = True
            return "expired" if expired else copy.copy(job)
