"""Operators that create Veo videos, download them, or do both in one task."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_veo import api
from airflow_provider_veo.api import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    JobState,
    StoredVideo,
    VeoError,
    VideoJob,
    VideoRequest,
    arguments,
)
from airflow_provider_veo.compat import AirflowTaskTerminated, AirflowTaskTimeout
from airflow_provider_veo.config import default_deferrable, min_poll_interval
from airflow_provider_veo.hooks import VeoHookMixin
from airflow_provider_veo.links import (
    STORED_VIDEO_URI_XCOM_KEY,
    STORED_VIDEO_URL_XCOM_KEY,
    VeoStoredVideoLink,
)
from airflow_provider_veo.operators import durable
from airflow_provider_veo.operators.durable import Submission, SubmitPolicy, submit_or_resume
from airflow_provider_veo.outcomes import checked_when_defined, is_unrendered, task_outcomes
from airflow_provider_veo.polling import wait_in_worker
from airflow_provider_veo.waiting import defer_to_trigger, time_left

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_veo.destinations import Destination

#: XCom key a generate or download task pushes when the API cannot deliver its completed video (the
#: message): the batch summary then offers no fetch command for it.
UNDELIVERABLE_XCOM_KEY = "video_unavailable"

#: The grid's label of a mapped task when the user sets none: the start of its prompt.
DEFAULT_MAP_LABEL = "{{ task.prompt | truncate(48, True, '…', 0) }}"


class _SubmittingOperator(VeoHookMixin, BaseOperator):
    """What the create and the generate operators share: the request's fields and a durable submit.

    On Airflow 3.3+ the job is kept in the task's ``task_state_store`` with a fingerprint of the
    request, so a retry reconnects to the job it already paid for instead of submitting a second
    one: a running or completed job is reused, a failed one is submitted anew unless
    ``resubmit_failed`` is false, and a job made for a different request (a cleared task whose
    prompt, model, seconds, size or reference images changed) is never reused.

    :param prompt: what the video shows.
    :param model: a model of :data:`airflow_provider_veo.api.MODELS`; an unknown name is sent with a warning.
    :param seconds: clip length the model allows (4, 6 or 8 for ``veo3.1-fast`` and ``veo3.1``; 4 when
        not given, always sent).
    :param size: ``WxH`` the model allows (``1280x720`` by default on the API side).
    :param input_reference: one image (first frame) or two (first and last frame): local paths (text
        or ``os.PathLike``), object storage URIs or http(s) URLs of PNG, JPEG or WebP files.
    :param veo_conn_id: the ``veo`` connection.
    :param resubmit_failed: on a retry after the earlier job failed, submit a new one (default) or fail.
    :param reuse_previous_job: reuse the job of an earlier try of this task (default); false (templated)
        renders anew on purpose, e.g. after clearing a task whose video was not liked.
    :param max_submissions: the most jobs this task may pay for across all its tries (default: no cap;
        1 to 100).
    :param visibility_grace: seconds (0 to 3600) after a create during which "not found" is taken as a
        job the API has not stored yet (the gateway answers the create first), rather than as an unknown
        id. A reused job's window runs from its own submission, not from the retry.

    Every argument is checked when the task is defined (templated ones once rendered, before anything
    is sent): a wrong one fails the task without retry, naming it and what is allowed.
    """

    # The request's arguments are VideoRequest's; a unit test pins this signature to them.
    template_fields: Sequence[str] = (*VideoRequest.arguments(), "reuse_previous_job")
    #: task_state_store key of the durable submit.
    STATE_KEY = durable.STATE_KEY

    def __init__(
        self,
        *,
        prompt: str,
        model: str = api.DEFAULT_MODEL,
        seconds: int | str | None = None,
        size: str | None = None,
        input_reference: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        veo_conn_id: str = "veo_default",
        resubmit_failed: bool = True,
        reuse_previous_job: bool | str = True,
        max_submissions: int | None = None,
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
        self.reuse_previous_job = reuse_previous_job
        self.max_submissions = max_submissions
        self.visibility_grace = visibility_grace
        with checked_when_defined(self):
            VideoRequest.check_known(
                {name: value for name, value in self._request_arguments().items() if not is_unrendered(value)}
            )
            self._submit_policy(rendered=False)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Map as usual; the grid labels each task by the start of its prompt unless told otherwise.

        Set on the mapped operator, where Airflow reads ``map_index_template`` when it renders the label.
        """
        if kwargs.get("map_index_template") is None:
            kwargs["map_index_template"] = DEFAULT_MAP_LABEL
        return super().partial(**kwargs)

    def _request_arguments(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in VideoRequest.arguments()}

    def build_request(self) -> VideoRequest:
        """The request from the rendered arguments. Raises :class:`VeoInputError`."""
        return VideoRequest.build(**self._request_arguments())

    def _submit_policy(self, *, rendered: bool = True) -> SubmitPolicy:
        """The retry switches, checked; before rendering, a templated ``reuse_previous_job`` waits."""
        reuse = self.reuse_previous_job
        return SubmitPolicy(
            reuse_previous_job=True
            if not rendered and is_unrendered(reuse)
            else arguments.switch("reuse_previous_job", reuse),
            resubmit_failed=arguments.switch("resubmit_failed", self.resubmit_failed),
            max_submissions=arguments.max_submissions(self.max_submissions),
            visibility_grace=arguments.visibility_grace(self.visibility_grace),
        )

    def submit_or_resume(self, context: Context, request: VideoRequest | None = None) -> Submission:
        """Validate, then reuse the job of an earlier try of this task or submit a new one."""
        policy = self._submit_policy()
        request = request or self.build_request()
        submission = submit_or_resume(self.hook, request, context, policy, self.log)
        context["ti"].xcom_push(key="video_id", value=submission.job.video_id)
        context["ti"].xcom_push(key="usage", value=submission.usage)
        return submission


class VeoCreateVideoOperator(_SubmittingOperator):
    """Validate a video request and submit it once; return the video id (also pushed as XCom ``video_id``).

    Takes the request's parameters (see :class:`_SubmittingOperator`); a retry reuses the job an
    earlier try paid for, on Airflow 3.3+. The XCom ``usage`` says what the task asked for and how
    many create requests it sent across its tries.
    """

    ui_color = "#e8f0fe"

    def execute(self, context: Context) -> str:
        with task_outcomes(self):
            return self.submit_or_resume(context).job.video_id


class _StoringOperator(VeoHookMixin, BaseOperator):
    """What the download and generate operators share: waiting in the worker, and publishing a stored
    video to the rest of Airflow."""

    poll_interval: float
    timeout: float
    write_manifest: bool
    operator_extra_links = (VeoStoredVideoLink(),)

    def __init__(self, **kwargs: Any) -> None:
        # An __init__ of its own: without one, Airflow's partial() reads BaseOperator's defaults through
        # this class and maps the task with ``inlets=None``, which fails the mapped task at run time.
        super().__init__(**kwargs)
        #: The stored video, kept for the OpenLineage listener that asks right after ``execute``.
        self._stored: StoredVideo | None = None

    def _check_storing_arguments(self, *, rendered: bool = True) -> None:
        """``destination`` (once rendered), ``poll_interval`` and ``timeout``, made the numbers used."""
        from airflow_provider_veo.destinations import Destination

        destination = getattr(self, "destination", None)
        if not isinstance(destination, Destination) and (rendered or not is_unrendered(destination)):
            arguments.destination(destination)
        self.poll_interval = arguments.poll_interval(
            "poll_interval", self.poll_interval, floor=min_poll_interval()
        )
        self.timeout = arguments.timeout("timeout", self.timeout)
        self.write_manifest = arguments.switch("write_manifest", self.write_manifest)

    def _store(
        self,
        context: Context,
        job: VideoJob,
        destination: Destination,
        request: VideoRequest | None,
        write_manifest: bool,
        reference_sha256s: Sequence[str] = (),
    ) -> StoredVideo:
        """Download the finished job, then describe the file to assets, lineage and maybe a manifest.

        Whatever fails once the job completed (the download, the disk, the store) says the video is
        paid for and how to fetch it. ``reference_sha256s`` are the digests taken when the request
        was submitted: the manifest records what was sent, without reading the images again.
        """
        from airflow_provider_veo import publishing
        from airflow_provider_veo.destinations import try_started_at

        target = destination.file_for(job.video_id)
        advised: tuple[type[BaseException], ...] = (VeoError, AirflowTaskTimeout, AirflowTaskTerminated)
        try:
            if removed := target.remove_stale_parts(older_than=try_started_at(context)):
                self.log.warning(
                    "Removed %d temporary file(s) of %s left by an earlier try: %s",
                    len(removed),
                    target.uri,
                    ", ".join(removed),
                )
            stored = self.hook.download_video(job.video_id, target, job=job, request=request)
            if write_manifest:
                publishing.write_manifest(target, stored, job, request, list(reference_sha256s))
        except api.VeoVideoUnavailableError as exc:
            # No fetch command would help: say so, and leave the summary a mark (it offers none either).
            context["ti"].xcom_push(key=UNDELIVERABLE_XCOM_KEY, value=str(exc))
            exc.args = (f"{exc} It cannot be fetched: downloading it again does not help.",)
            raise
        except advised as exc:
            # An execution_timeout or a SIGTERM while storing stays what it is, with the advice added.
            if job.state is JobState.SUCCEEDED:
                exc.args = (
                    f"{exc}. {_paid_for(job.video_id, destination.written, self.veo_conn_id)}".lstrip(". "),
                )
            raise
        self._stored = stored
        publishing.emit_asset_events(context, list(self.outlets), stored)
        publishing.record_hook_lineage(self, stored)
        return stored

    def _wait_here(self, context: Context, job: VideoJob, *, visible_by: float | None) -> VideoJob:
        """Poll in the worker until the job ends, within ``timeout`` and what is left of
        ``execution_timeout``; a job that failed or did not finish is raised as its error."""
        event = wait_in_worker(
            self.hook,
            job,
            poll_interval=self.poll_interval,
            timeout=time_left(self, context, self.timeout),
            log=self.log,
            visible_by=visible_by,
        )
        return api.job_from_event(event)

    def _push_link(self, context: Context, target: Destination) -> None:
        """What the "Stored video" link reads, pushed before any wait so a deferred task shows it too."""
        context["ti"].xcom_push(key=STORED_VIDEO_URI_XCOM_KEY, value=target.canonical_uri)
        context["ti"].xcom_push(key=STORED_VIDEO_URL_XCOM_KEY, value=target.console_url())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The stored video as the output, the reference images as inputs (OpenLineage provider only)."""
        from airflow_provider_veo import publishing

        return publishing.openlineage_facets(self._stored)


def _earlier_video_id(context: Context) -> str | None:
    """The job an earlier try of this task submitted (Airflow 3.3+), if its record can be read."""
    try:
        store = context.get("task_state_store")
        return durable.SubmissionRecord.read(store.get(durable.STATE_KEY)).video_id if store else None
    except Exception:  # an unreadable record is the submit's to report, not this message's
        return None


def _resume_with(submission: Submission) -> dict[str, Any] | None:
    """What ``execute_complete`` gets besides the event: the digests of the reference images sent, for
    the manifest, so the images are read once per try."""
    digests = submission.reference_sha256s
    return {"reference_sha256s": list(digests)} if digests else None


def _paid_for(video_id: str, destination: str, conn_id: str) -> str:
    """How to fetch a paid video later, with the connection that created it; the command is
    shell-quoted, so pasting it runs nothing the id or the destination holds, and shown on one line
    whatever control characters they have."""
    from airflow_provider_veo.cli import command

    fetch = command("download", video_id, destination, conn_id=conn_id)
    return api.shown(
        f"Video {video_id} is paid for and stays downloadable until its URL expires: fetch it with "
        f"VeoDownloadVideoOperator(video_id={video_id!r}, destination=...) or this shell command: {fetch}"
    )


class VeoDownloadVideoOperator(_StoringOperator):
    """Stream a completed video to a local path or any object store, and return what was written.

    ``destination`` is a local path or an ObjectStoragePath URI (``file://``, ``s3://conn_id@bucket/key``,
    ``gs://...``, or Azure's ``abfs://container@account.dfs.core.windows.net/path``; see
    :mod:`airflow_provider_veo.destinations`); one ending in ``/`` gets ``<id made safe for a file
    name>.mp4``. Returns the
    :class:`~airflow_provider_veo.api.StoredVideo` dict. A job that is not finished fails the task
    (retryable), unless ``wait_for_completion`` polls for it first.

    :param wait_for_completion: wait in the worker for an unfinished job (``poll_interval``,
        ``timeout``) instead of failing; for waiting without a worker slot use ``VeoTaskSensor``.
    :param poll_interval: seconds between status reads, 1 (the floor, ``[veo] min_poll_interval``) to 3600.
    :param timeout: seconds to wait for the job, more than 0 and at most a week; ``None`` is an hour.
    :param write_manifest: write ``<video>.json`` beside the MP4 once it is published.
    """

    template_fields: Sequence[str] = ("video_id", "destination")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        video_id: str,
        destination: str | os.PathLike[str] | Destination,
        veo_conn_id: str = "veo_default",
        wait_for_completion: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TIMEOUT,
        write_manifest: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video_id = video_id
        self.destination = destination
        self.veo_conn_id = veo_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.write_manifest = write_manifest
        with checked_when_defined(self):
            self._check_arguments(rendered=False)

    def _check_arguments(self, *, rendered: bool = True) -> None:
        if rendered or not is_unrendered(self.video_id):
            arguments.video_id("video_id", self.video_id)
        self.wait_for_completion = arguments.switch("wait_for_completion", self.wait_for_completion)
        self._check_storing_arguments(rendered=rendered)

    def execute(self, context: Context) -> StoredVideo:
        from airflow_provider_veo.destinations import parse_destination

        with task_outcomes(self):
            self._check_arguments()
            video_id = self.video_id
            destination = parse_destination(self.destination)
            self._push_link(context, destination.file_for(video_id))
            job = self.hook.get_video(video_id)
            if not job.state.is_terminal and self.wait_for_completion:
                job = self._wait_here(context, job, visible_by=None)
            if job.state is not JobState.SUCCEEDED:
                if job.state is JobState.FAILED:
                    raise job.failure()
                raise api.VeoDownloadError(
                    f"Video {api.shown(video_id)} is not finished (status {job.status!r}): wait for it with "
                    "VeoTaskSensor before this task, create it with VeoGenerateVideoOperator, or set "
                    "wait_for_completion=True"
                )
            return self._store(context, job, destination, None, self.write_manifest)


class VeoGenerateVideoOperator(_SubmittingOperator, _StoringOperator):
    """Create a video, wait for it (in the triggerer when deferrable) and download it, in one task.

    Takes the parameters of :class:`VeoCreateVideoOperator` and :class:`VeoDownloadVideoOperator`
    and returns the :class:`~airflow_provider_veo.api.StoredVideo` dict, with the prompt that made
    it. A retry resumes the same job on Airflow 3.3+ (see the create operator), so a failed
    download or a lost worker never pays for a second video. Mapped, each task is labelled in the
    grid by the start of its prompt unless ``map_index_template`` says otherwise.

    :param poll_interval: seconds between status reads, 1 (the floor, ``[veo] min_poll_interval``) to 3600.
    :param timeout: seconds to wait for the job before failing (a retry waits for the same job again),
        more than 0 and at most a week; ``None`` is an hour. A shorter ``execution_timeout`` bounds the
        wait too, deferred or not.
    :param deferrable: wait in the triggerer, freeing the worker slot.
    :param write_manifest: write ``<video>.json`` beside the MP4 once it is published.
    """

    template_fields: Sequence[str] = (*_SubmittingOperator.template_fields, "destination")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        destination: str | os.PathLike[str] | Destination,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TIMEOUT,
        deferrable: bool | None = None,
        write_manifest: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.poll_interval = poll_interval
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.write_manifest = write_manifest
        with checked_when_defined(self):
            self._check_storing_arguments(rendered=False)
            self.deferrable = arguments.switch("deferrable", self.deferrable)

    def execute(self, context: Context) -> StoredVideo:
        from airflow_provider_veo.destinations import parse_destination

        with task_outcomes(self):
            self._check_storing_arguments()
            request = self.build_request()  # every argument checked before anything is read or sent
            destination = parse_destination(self.destination)
            self._check_destination(context, destination)
            submission = self.submit_or_resume(context, request)
            job = submission.job
            self._push_link(context, destination.file_for(job.video_id))
            if not job.state.is_terminal and self.deferrable:
                defer_to_trigger(
                    self,
                    context,
                    video_id=job.video_id,
                    veo_conn_id=self.veo_conn_id,
                    poll_interval=self.poll_interval,
                    timeout=self.timeout,
                    visible_by=submission.visible_by,
                    resume_kwargs=_resume_with(submission),
                )
            stored = self._store(
                context,
                self._wait_here(context, job, visible_by=submission.visible_by),
                destination,
                request,
                self.write_manifest,
                submission.reference_sha256s,
            )
            stored["usage"] = submission.usage
            return stored

    def _check_destination(self, context: Context, destination: Destination) -> None:
        """Refuse a destination the video could not be written to, before paying for the video. A
        retry whose earlier try already submitted a job says which, and how to fetch it."""
        try:
            destination.check_writable()
        except VeoError as exc:
            earlier = _earlier_video_id(context)
            if earlier:
                exc.args = (
                    f"{exc}. An earlier try of this task submitted video {earlier}; once completed, "
                    f"{_paid_for(earlier, destination.written, self.veo_conn_id)}",
                )
            raise

    def execute_complete(
        self, context: Context, event: dict[str, Any], reference_sha256s: Sequence[str] = ()
    ) -> StoredVideo:
        """Resume after the trigger fired: download a completed video, fail otherwise.

        ``reference_sha256s`` are the digests the deferring try took of the images it sent.
        """
        from airflow_provider_veo.destinations import parse_destination

        with task_outcomes(self):
            job = api.job_from_event(event)
            destination = parse_destination(self.destination)
            request = self.build_request()
            stored = self._store(context, job, destination, request, self.write_manifest, reference_sha256s)
            ti = context["ti"]  # the usage pushed before deferring, by this same try
            stored["usage"] = ti.xcom_pull(task_ids=ti.task_id, key="usage", map_indexes=ti.map_index)
            return stored
