"""Submitting a job at most once per request, across the tries of a task: the durable submit.

On Airflow 3.3+ a task keeps, in its ``task_state_store``, the job it paid for, a fingerprint of the
request that made it, when it was submitted, and how many create requests and jobs it has cost. A
retry (a lost worker, a failed download, a deferral timeout) reconnects to that job instead of
paying for a second one, unless the request changed (a cleared task with a new prompt must not get
the old video) or the user asked for a new render. Airflow 3.1 and 3.2 have no such store: there, a
retry submits again, and the task log says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_veo import api
from airflow_provider_veo.api import JobState, Logger, Usage, VideoJob, VideoRequest
from airflow_provider_veo.publishing import reference_sha256s

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_veo.hooks.veo import VeoHook

#: task_state_store key of the record; renaming it breaks resumes of in-flight retries.
STATE_KEY = "veo_video_id"


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
        if isinstance(value, str) and value:
            return cls(video_id=value, submissions=1, create_requests=1)
        if isinstance(value, dict):
            known = {name: value[name] for name in cls.__dataclass_fields__ if name in value}
            return cls(**known)
        return cls()

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Submission:
    """The job a task waits for, and until when "not found" means "not stored yet"."""

    job: VideoJob
    visible_by: float
    usage: Usage


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
    fingerprint = api.request_fingerprint(request, reference_sha256s(images))
    store = context.get("task_state_store")
    record = SubmissionRecord.read(store.get(STATE_KEY)) if store is not None else SubmissionRecord()
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
            store.set(STATE_KEY, replace(record, create_requests=record.create_requests + sent).as_json())
        raise
    record = SubmissionRecord(
        video_id=job.video_id,
        submitted_at=time.time(),
        fingerprint=fingerprint,
        create_requests=record.create_requests + hook.create_requests_sent - sent_before,
        submissions=record.submissions + 1,
    )
    if store is not None:
        store.set(STATE_KEY, record.as_json())
    return Submission(
        job, record.submitted_at + policy.visibility_grace, _usage(context, job, request, record)
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
    except api.VeoJobNotFoundError:
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
