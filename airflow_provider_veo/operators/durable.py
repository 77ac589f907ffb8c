"""Submitting a job at most once per request, across the tries of a task: the durable submit.

On Airflow 3.3+ a task keeps, in its ``task_state_store``, the job it paid for, a fingerprint of the
request that made it, when it was submitted, and how many create requests and jobs it has cost. A
retry (a lost worker, a failed download, a deferral timeout) reconnects to that job instead of
paying for a second one, unless the request changed (a cleared task with a new prompt must not get
the old video) or the user asked for a new render. Airflow 3.1 and 3.2 have no such store: there, a
retry submits again, and the task log says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_veo import api
from airflow_provider_veo.api import JobState, Logger, Usage, VeoError, VideoJob, VideoRequest
from airflow_provider_veo.publishing import reference_sha256s

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_veo.hooks.veo import VeoHook

#: task_state_store key of the record; renaming it breaks resumes of in-flight retries.
STATE_KEY = "veo_video_id"

#: What a record written by a release that stored a bare video id looks like.
_LEGACY_ID = re.compile(r"^[^\s\x00-\x1f{\[\"']{1,256}$")


class VeoStateRecordError(VeoError):
    """The task's record of the job it paid for cannot be read or written: submitting could pay twice.

    ``retryable`` when reading the store itself failed (it may be back at the next try), not when
    what it holds is garbage.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UnreadableRecord(ValueError):
    """What is wrong with a stored record, in words."""


@dataclass(frozen=True)
class SubmissionRecord:
    """What a task remembers across its tries. Earlier releases stored a bare video id."""

    video_id: str | None = None
    submitted_at: float = 0.0
    fingerprint: str | None = None
    #: Create requests (POSTs) sent across all tries, and the jobs they started.
    create_requests: int = 0
    submissions: int = 0

    @classmethod
    def read(cls, value: object) -> SubmissionRecord:
        """The record as stored, or :class:`UnreadableRecord` saying what does not fit."""
        if value is None:
            return cls()
        if isinstance(value, str):
            if not _LEGACY_ID.match(value):
                raise UnreadableRecord(f"text that is not a video id: {api.describe(value)}")
            return cls(video_id=value, submissions=1, create_requests=1)
        if not isinstance(value, dict):
            raise UnreadableRecord(f"{api.describe(value)} instead of an object")
        problems = [
            f"{name}={api.describe(value[name])}"
            for name, fits in _FIELD_RULES.items()
            if name in value and not fits(value[name])
        ]
        if problems:
            raise UnreadableRecord("an object with " + ", ".join(problems))
        return cls(**{name: value[name] for name in _FIELD_RULES if name in value})

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _epoch(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**40


def _id(value: object) -> bool:
    return value is None or (isinstance(value, str) and 0 < len(value) <= 1024)


def _digest(value: object) -> bool:
    return value is None or (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None)


#: What each field of a stored record may hold; anything else makes the record unreadable.
_FIELD_RULES: dict[str, Callable[[object], bool]] = {
    "video_id": _id,
    "submitted_at": _epoch,
    "fingerprint": _digest,
    "create_requests": _count,
    "submissions": _count,
}


@dataclass(frozen=True)
class Submission:
    """The job a task waits for, until when "not found" means "not stored yet", and the digests of the
    reference images sent (read once per try, for the fingerprint and the manifest alike)."""

    job: VideoJob
    visible_by: float
    usage: Usage
    reference_sha256s: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitPolicy:
    """The operator's switches for a retry: reuse the earlier job, resubmit a failed one, cap the cost."""

    reuse_previous_job: bool
    resubmit_failed: bool
    max_submissions: int | None
    visibility_grace: float


def submit_or_resume(
    hook: VeoHook, request: VideoRequest, context: Context, policy: SubmitPolicy, log: Logger
) -> Submission:
    """Reuse the job an earlier try of this task paid for, when it is still good, or submit a new one."""
    images = hook.load_references(request)  # read and checked before anything is sent or decided
    digests = tuple(reference_sha256s(images))
    fingerprint = request.fingerprint(digests)
    store = context.get("task_state_store")
    record = _read_record(store, policy, log) if store is not None else SubmissionRecord()
    if store is None:
        log.warning(
            "This Airflow has no task_state_store (Airflow 3.3+): if this task fails after submitting "
            "and is retried, the retry submits and pays for a new video."
        )
    elif record.video_id:
        reused = _reuse(hook, record, fingerprint, policy, log)
        if reused is not None:
            return Submission(
                reused,
                record.submitted_at + policy.visibility_grace,
                _usage(context, reused, request, record),
                digests,
            )
    if policy.max_submissions is not None and record.submissions >= policy.max_submissions:
        raise api.VeoSubmissionLimitError(
            f"This task has already paid for {record.submissions} job(s) across its tries "
            f"(max_submissions={policy.max_submissions}); it submits no more. The last was video "
            f"{api.shown(str(record.video_id))}: download it with VeoDownloadVideoOperator, or raise "
            "max_submissions."
        )
    sent_before = hook.create_requests_sent
    try:
        job = hook.submit(request, images=images)
    except BaseException:
        # Counted even when the create failed: a POST whose fate is unknown may have started a job.
        if store is not None:
            sent = hook.create_requests_sent - sent_before
            try:
                store.set(STATE_KEY, replace(record, create_requests=record.create_requests + sent).as_json())
            except Exception as exc:  # the create's own error is the one to report
                log.warning("Could not count the failed create request in the task_state_store: %s", exc)
        raise
    record = SubmissionRecord(
        video_id=job.video_id,
        submitted_at=time.time(),
        fingerprint=fingerprint,
        create_requests=record.create_requests + hook.create_requests_sent - sent_before,
        submissions=record.submissions + 1,
    )
    if store is not None:
        try:  # first thing after paying: a retry must find this job whatever fails next
            store.set(STATE_KEY, record.as_json())
        except Exception as exc:
            raise VeoStateRecordError(
                f"Video {job.video_id} was submitted (and is paid for), but this task could not record it "
                f"in its task_state_store ({type(exc).__name__}: {exc}), so a retry would not find it and "
                "would pay again: failing without retry. Fetch the video with "
                f"VeoDownloadVideoOperator(video_id={job.video_id!r}, destination=...) once it is done."
            ) from exc
    return Submission(
        job, record.submitted_at + policy.visibility_grace, _usage(context, job, request, record), digests
    )


def _read_record(store: Any, policy: SubmitPolicy, log: Logger) -> SubmissionRecord:
    """The earlier tries' record. One that cannot be read may name a job already paid for: this try
    then submits nothing, unless the user asked for a new render (``reuse_previous_job=False``)."""
    try:
        value = store.get(STATE_KEY)
    except Exception as exc:  # the store did not answer, or cannot decode what it holds
        if not policy.reuse_previous_job:
            log.warning("Not reading this task's record (%s): reuse_previous_job is off", exc)
            return SubmissionRecord()
        raise VeoStateRecordError(
            f"Could not read this task's record of the video it paid for (task_state_store key "
            f"{STATE_KEY!r}: {type(exc).__name__}: {exc}): not submitting, so as not to pay twice; a "
            f"retry reads it again. If it stays unreadable: {_HOW_TO_PROCEED}",
            retryable=True,
        ) from exc
    try:
        return SubmissionRecord.read(value)
    except UnreadableRecord as exc:
        found = f"task_state_store key {STATE_KEY!r} holds {exc}"
        if not policy.reuse_previous_job:
            log.warning("Replacing an unreadable record (%s): reuse_previous_job is off", found)
            return SubmissionRecord()
        raise VeoStateRecordError(
            f"This task's record of the video it paid for cannot be read ({found}). It may name a video "
            "an earlier try paid for, so this try submits nothing rather than pay again. To proceed, "
            + _HOW_TO_PROCEED
        ) from None


_HOW_TO_PROCEED = (
    "find the earlier video's id in an earlier try's log (\"Submitted video …\") or its `video_id` XCom "
    "and fetch it with VeoDownloadVideoOperator or `python -m airflow_provider_veo download <video id> "
    "<destination>`; or, to render anew, clear this task with reuse_previous_job=False, which replaces "
    "the record."
)


def _reuse(
    hook: VeoHook, record: SubmissionRecord, fingerprint: str, policy: SubmitPolicy, log: Logger
) -> VideoJob | None:
    """The earlier try's job when this try may reuse it, else ``None`` (with the reason logged)."""
    assert record.video_id is not None
    if not policy.reuse_previous_job:
        log.warning(
            "reuse_previous_job is off: not reusing video %s; submitting a new render",
            api.shown(record.video_id),
        )
        return None
    if record.fingerprint != fingerprint:
        log.warning(
            "The request changed since an earlier try submitted video %s (prompt, model, seconds, size or "
            "reference images): submitting anew, so this task never hands back a video for another request",
            api.shown(record.video_id),
        )
        return None
    try:
        job = hook.get_video(record.video_id)
    except (api.VeoJobNotFoundError, api.VeoModelAccessError):
        # "Not found", or a model-limited key's 403 on a job the gateway has not stored yet: the same
        # grace window as the waits, run from the job's own submission.
        if time.time() >= record.submitted_at + policy.visibility_grace:
            raise
        job = VideoJob(video_id=record.video_id, status="unknown")  # created moments ago, not stored yet
    if job.state is not JobState.FAILED:
        log.info(
            "Reusing video %s submitted by an earlier try (status %r): not submitting again",
            api.shown(job.video_id),
            job.status,
        )
        return job
    if not policy.resubmit_failed:
        raise job.failure()
    log.warning("Video %s of an earlier try ended %r; submitting anew", api.shown(job.video_id), job.status)
    return None


def _usage(context: Context, job: VideoJob, request: VideoRequest, record: SubmissionRecord) -> Usage:
    return Usage(
        video_id=job.video_id,
        model=request.model,
        seconds=request.seconds,
        size=request.size,
        create_requests=record.create_requests,
        try_number=int(getattr(context["ti"], "try_number", 0) or 0),
    )
