"""Operators that create Veo videos, download them, or do both in one task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    JobEvent,
    JobState,
    JobWatch,
    StoredVideo,
    VideoJob,
    VideoRequest,
)
from airflow_provider_veo.operator_support import VeoHookMixin, default_deferrable, task_outcomes
from airflow_provider_veo.waiting import defer_to_trigger, poll_once

if TYPE_CHECKING:
    from airflow.sdk import Context


class _SubmittingOperator(VeoHookMixin, BaseOperator):
    """What the create and the generate operators share: the request's fields and a durable submit.

    On Airflow 3.3+ the id is kept in the task's ``task_state_store``, so a retry of the task
    reconnects to the job it already paid for instead of submitting a second one: a running or
    completed job is reused, a failed one is submitted anew unless ``resubmit_failed`` is false.

    :param prompt: what the video shows.
    :param model: a model of :data:`airflow_provider_veo.api.MODELS`; an unknown name is sent with a warning.
    :param seconds: clip length the model allows (4, 6 or 8 for ``veo3.1-fast`` and ``veo3.1``; 4 when
        not given, always sent).
    :param size: ``WxH`` the model allows (``1280x720`` by default on the API side).
    :param input_reference: one image (first frame) or two (first and last frame): local paths,
        object storage URIs or http(s) URLs of PNG, JPEG or WebP files.
    :param veo_conn_id: the ``veo`` connection.
    :param resubmit_failed: on a retry after the earlier job failed, submit a new one (default) or fail.
    :param visibility_grace: seconds after a create during which "not found" is taken as a job the API
        has not stored yet (the gateway answers the create first), rather than as an unknown id.
    """

    template_fields: Sequence[str] = ("prompt", "model", "seconds", "size", "input_reference")

    #: task_state_store key of the submitted video (``{"video_id", "submitted_at"}``; a bare id from
    #: earlier releases is read too); renaming it breaks resumes of in-flight retries.
    STATE_KEY = "veo_video_id"

    def __init__(
        self,
        *,
        prompt: str,
        model: str = api.DEFAULT_MODEL,
        seconds: int | str | None = None,
        size: str | None = None,
        input_reference: str | list[str] | None = None,
        veo_conn_id: str = "veo_default",
        resubmit_failed: bool = True,
        visibility_grace: float = api.DEFAULT_VISIBILITY_GRACE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        self.seconds = seconds
        self.size = size
        self.input_reference = input_reference
        self.veo_conn_id = veo_conn_id
        self.resubmit_failed = resubmit_failed
        self.visibility_grace = visibility_grace

    def build_request(self) -> VideoRequest:
        return api.build_request(
            prompt=self.prompt,
            model=self.model,
            seconds=self.seconds,
            size=self.size,
            input_reference=self.input_reference,
        )

    def submit_or_resume(self, context: Context) -> tuple[VideoJob, float]:
        """Validate, then reuse the job of an earlier try of this task or submit a new one.

        Returns the job and the epoch second until which "not found" means "not stored yet".
        """
        request = self.build_request()
        store = context.get("task_state_store")
        if store is None:
            self.log.warning(
                "This Airflow has no task_state_store (Airflow 3.3+): if this task fails after submitting "
                "and is retried, the retry submits and pays for a new video."
            )
        elif earlier := _stored_submission(store.get(self.STATE_KEY)):
            video_id, submitted_at = earlier
            visible_by = submitted_at + self.visibility_grace
            try:
                job = self.hook.get_video(video_id)
            except api.VeoJobNotFoundError:
                if time.time() >= visible_by:
                    raise
                job = VideoJob(video_id=video_id, status="unknown")  # created moments ago, not stored yet
            if job.state is not JobState.FAILED:
                self.log.info(
                    "Reusing video %s submitted by an earlier try (status %r): not submitting again",
                    job.video_id,
                    job.status,
                )
                self._remember(context, job)
                return job, visible_by
            if not self.resubmit_failed:
                raise job.failure()
            self.log.warning("Video %s of an earlier try ended %r; submitting anew", job.video_id, job.status)
        job = self.hook.submit(request)
        submitted_at = time.time()
        if store is not None:
            store.set(self.STATE_KEY, {"video_id": job.video_id, "submitted_at": submitted_at})
        self._remember(context, job)
        return job, submitted_at + self.visibility_grace

    @staticmethod
    def _remember(context: Context, job: VideoJob) -> None:
        context["ti"].xcom_push(key="video_id", value=job.video_id)


def _stored_submission(value: object) -> tuple[str, float] | None:
    """The video id and submission time an earlier try stored; a bare id (older releases) has no time."""
    if isinstance(value, dict) and value.get("video_id"):
        return str(value["video_id"]), float(value.get("submitted_at") or 0.0)
    if isinstance(value, str) and value:
        return value, 0.0
    return None


class VeoCreateVideoOperator(_SubmittingOperator):
    """Validate a video request and submit it once; return the video id (also pushed as XCom ``video_id``).

    Takes the request's parameters (see :class:`_SubmittingOperator`); a retry reuses the job an
    earlier try paid for, on Airflow 3.3+.
    """

    ui_color = "#e8f0fe"

    def execute(self, context: Context) -> str:
        with task_outcomes():
            job, _ = self.submit_or_resume(context)
        return job.video_id


class VeoDownloadVideoOperator(VeoHookMixin, BaseOperator):
    """Stream a completed video to a local path or any object store, and return what was written.

    ``destination`` is a local path or an ObjectStoragePath URI (``file://``, ``s3://conn_id@bucket/key``,
    ``gs://...``); one ending in ``/`` gets ``<id made safe for a file name>.mp4``. Returns a dict with
    ``video_id``, ``uri``, ``bytes``, ``sha256``, ``content_type``, ``model``, ``seconds`` and ``size``.
    """

    template_fields: Sequence[str] = ("video_id", "destination")
    ui_color = "#e6f4ea"

    def __init__(
        self, *, video_id: str, destination: str, veo_conn_id: str = "veo_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.video_id = video_id
        self.destination = destination
        self.veo_conn_id = veo_conn_id

    def execute(self, context: Context) -> StoredVideo:
        with task_outcomes():
            return self.hook.download_video(str(self.video_id), self.destination)


class VeoGenerateVideoOperator(_SubmittingOperator):
    """Create a video, wait for it (in the triggerer when deferrable) and download it, in one task.

    Takes the parameters of :class:`VeoCreateVideoOperator` and :class:`VeoDownloadVideoOperator`
    and returns the download's dict. A retry resumes the same job on Airflow 3.3+ (see the create
    operator), so a failed download or a lost worker never pays for a second video.

    :param poll_interval: seconds between status reads.
    :param timeout: seconds to wait for the job before failing (a retry waits for the same job again).
    :param deferrable: wait in the triggerer, freeing the worker slot.
    """

    template_fields: Sequence[str] = (*_SubmittingOperator.template_fields, "destination")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        destination: str,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Context) -> StoredVideo:
        from airflow_provider_veo.storage import check_destination

        with task_outcomes():
            check_destination(self.destination)  # before paying for a video it could not store
            job, visible_by = self.submit_or_resume(context)
            if not job.state.is_terminal and self.deferrable:
                defer_to_trigger(
                    self,
                    video_id=job.video_id,
                    veo_conn_id=self.veo_conn_id,
                    poll_interval=self.poll_interval,
                    timeout=self.timeout,
                    visible_by=visible_by,
                )
            return self._download(api.job_from_event(self._wait(job, visible_by)))

    def _wait(self, job: VideoJob, visible_by: float) -> JobEvent:
        """Poll in the worker (``deferrable=False``) with the trigger's own decisions."""
        watch = JobWatch(
            job.video_id, self.poll_interval, time.time() + self.timeout, self.log, visible_by=visible_by
        )
        outcome: api.PollOutcome = job
        while not isinstance(step := watch.after_poll(outcome), dict):
            time.sleep(step)
            outcome = poll_once(self.hook, job.video_id)
        return step

    def execute_complete(self, context: Context, event: dict[str, Any]) -> StoredVideo:
        """Resume after the trigger fired: download a completed video, fail otherwise."""
        with task_outcomes():
            return self._download(api.job_from_event(event))

    def _download(self, job: VideoJob) -> StoredVideo:
        return self.hook.download_video(job.video_id, self.destination, job=job, request=self.build_request())
