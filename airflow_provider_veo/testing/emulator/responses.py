"""From an HTTP request, through the backend, to an answer: the flow every profile shares.

A profile is a subclass of :class:`Responses` that says how the server words each answer: its error
shapes, its job objects, how it serves ``/content``. The flow (routing, authentication, injected
faults, validation, markers, creating and polling) is written once here, so two profiles cannot
drift apart on what they check, only on how they say it. The CDN behind ``video_url`` is the same
for every profile and lives here too.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import ClassVar, Protocol
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_veo.testing.emulator.backend import Backend, CreateFailure, EmulatedJob
from airflow_provider_veo.testing.emulator.bodies import (
    PROXY_502_HTML,
    broken_body,
    gateway_proxy_error,
    internal_task_view,
    request_id,
    storage_error,
)
from airflow_provider_veo.testing.emulator.forms import Form, Part
from airflow_provider_veo.testing.emulator.models import (
    DEFAULT_MODEL,
    DEFAULT_SECONDS,
    MODEL_WHEN_ABSENT,
    VIDEOS_PATH,
    InvalidField,
    check_fields,
    check_references,
)
from airflow_provider_veo.testing.emulator.scenario import parse_marker


class Site(Protocol):
    """What the responses need of the emulator: where it listens (for URLs) and the key it accepts."""

    api_key: str

    @property
    def url(self) -> str: ...

    @property
    def cdn_url(self) -> str: ...


@dataclass(frozen=True)
class ApiRequest:
    """One request to the API listener, its body already read."""

    method: str
    #: The request target as sent: path and query, still percent-encoded.
    target: str
    headers: Message
    form: Form = field(default_factory=Form)
    #: This request's id, for error messages (and, in the new-api profile, a header).
    id: str = field(default_factory=request_id)


@dataclass
class Answer:
    """A whole answer, sent with a Content-Length."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class VideoAnswer:
    """A job's video body, streamed with the job's download faults applied."""

    job: EmulatedJob
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent with ``Transfer-Encoding: chunked`` and no Content-Length, as a proxy relaying a stream.
    chunked: bool = False
    #: Stop after this many bytes (``Scenario.content_cut_at``); chunked, still with the zero chunk.
    cut_at: int | None = None


class Drop:
    """No answer at all: the connection is closed, as a crashed proxy or a network fault would."""


DROP = Drop()
Reply = Answer | VideoAnswer | Drop


class Refused(Exception):
    """Raised inside the flow to stop and answer ``reply`` instead."""

    def __init__(self, reply: Answer) -> None:
        super().__init__(reply)
        self.reply = reply


class Responses(ABC):
    """The request flow over one backend; subclasses give the wording of one real-world server."""

    #: The ``seconds`` a create without one gets (and is billed for).
    default_seconds: ClassVar[str] = DEFAULT_SECONDS
    #: Whether ``/content`` streams chunked, without a Content-Length.
    chunked_content: ClassVar[bool] = False

    def __init__(self, backend: Backend, site: Site) -> None:
        self.backend = backend
        self.site = site

    # -- entry points, called by the server ------------------------------------------------

    def answer_post(self, request: ApiRequest) -> Reply:
        return self._run(self._create, request)

    def answer_get(self, request: ApiRequest) -> Reply:
        return self._run(self._get, request)

    def answer_other(self, request: ApiRequest) -> Reply:
        """A method or path the API does not have (Veo has no list, delete or cancel)."""
        return self._run(self.invalid_url, request)

    def answer_unreadable(self, request: ApiRequest, status: int, code: str, message: str) -> Reply:
        """A request whose body could not be read (bad length or chunking, too large)."""
        return self._run(lambda r: self.unreadable_body(r, status, code, message), request)

    def _run(self, step: Callable[[ApiRequest], Reply], request: ApiRequest) -> Reply:
        try:
            reply = step(request)
        except Refused as refused:
            reply = refused.reply
        return self.finish(request, reply)

    # -- the flow --------------------------------------------------------------------------

    def _admit(self, request: ApiRequest, job: EmulatedJob | None) -> None:
        """Wait the injected delay, then check the key and the rate limit, as a gateway does first."""
        time.sleep(self.backend.delay(job.id if job else None))
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if not authorization or scheme.lower() != "bearer" or token.strip() != self.site.api_key:
            raise Refused(self.unauthorized(request, missing=not authorization))
        retry_after = self.backend.take_rate_limit(job.id if job else None)
        if retry_after is not None:
            raise Refused(self.rate_limited(request, retry_after, job.model if job else DEFAULT_MODEL))

    def _create(self, request: ApiRequest) -> Reply:
        if urlsplit(request.target).path != VIDEOS_PATH:
            raise Refused(self.invalid_url(request))
        self._admit(request, None)
        parts = self._parts(request)
        refusal = self.screen_form(request, parts)
        if refusal is not None:
            return refusal
        scalars: dict[str, str] = {}
        references: list[Part] = []
        for part in parts:
            if part.name == "input_reference":
                references.append(part)
            elif part.filename is None:
                scalars.setdefault(part.name, part.data.decode("utf-8", "replace"))
        prompt = scalars.get("prompt", "")
        model = scalars.get("model", "").strip() or MODEL_WHEN_ABSENT
        try:
            checked = check_fields(model, scalars, default_seconds=self.default_seconds)
            seconds, size = checked["seconds"], checked["size"]
            check_references(model, references)
        except InvalidField as error:
            raise Refused(self.invalid_field(request, error)) from None
        try:
            overrides = parse_marker(prompt)
        except ValueError as error:
            raise Refused(self.bad_marker(request, str(error))) from None
        try:
            job = self.backend.create(model, prompt, seconds, size, overrides)
        except CreateFailure as failure:
            if failure.job is not None:
                time.sleep(failure.job.scenario.create_delay)
            if failure.failure == "html_502":
                return Answer(502, PROXY_502_HTML, "text/html")
            if failure.failure in ("reset_before_create", "reset_after_create"):
                return DROP
            return self.create_refused(request, failure.failure, model, failure.retry_after)
        time.sleep(job.scenario.create_delay)
        return self.job_answer(request, job, created=True)

    def _parts(self, request: ApiRequest) -> list[Part]:
        """The multipart parts of a create, or the profile's refusal of an unreadable body."""
        form = request.form
        if form.error:
            raise Refused(self.bad_form(request, form.error))
        if form.parts is None:
            raise Refused(
                self.bad_form(
                    request,
                    "Content-Type must be multipart/form-data (send fields as form-data, even without files)",
                )
            )
        return form.parts

    def _get(self, request: ApiRequest) -> Reply:
        split = urlsplit(request.target)
        path = unquote(split.path)
        prefix = VIDEOS_PATH + "/"
        if not path.startswith(prefix) or path == prefix:
            raise Refused(self.invalid_url(request))
        video_id, content = path[len(prefix) :], False
        if video_id.endswith("/content"):
            video_id, content = video_id[: -len("/content")], True
        job = self.backend.job(video_id)
        self._admit(request, job)
        fault = self.backend.take_get_fault(video_id)
        if fault == "reset":
            return DROP
        if isinstance(fault, int):
            return self.injected_error(request, fault, job.model if job else DEFAULT_MODEL, content=content)
        if self.backend.take_access_denied(video_id):
            return self.create_refused(request, "model_forbidden", "", 0.0)  # the distributor's check
        if job is None or self.backend.take_not_visible(video_id):
            return self.unknown_task(request, video_id, content=content)
        if content:
            return self._content(request, job, split.query)
        broken = self.backend.take_broken_poll(video_id)
        if broken is not None:
            return Answer(200, broken_body(broken, job.id))
        job = self.backend.poll(video_id)
        if job.status in ("failed", "error") and job.scenario.error_only_body:
            error = {"message": job.scenario.error_message, "type": job.scenario.error_code}
            return Answer(200, json.dumps({"error": error, "id": job.id}).encode())
        if job.scenario.internal_task_shape:
            view = internal_task_view(
                job.id, job.status, job.progress, job.scenario.error_message, job.created_at, job.completed_at
            )
            return Answer(200, view)
        return self.job_answer(request, job, created=False)

    def _content(self, request: ApiRequest, job: EmulatedJob, query: str) -> Reply:
        refusal = self.check_variant(request, query)
        if refusal is not None:
            return refusal
        job = self.backend.look(job.id)
        if job.status != "completed":
            return self.content_not_ready(request, job)
        if job.scenario.content_unavailable:
            return self.content_unavailable(request, job)
        if job.scenario.content_blocked:
            message = "request blocked: the upstream video address resolves to a private network"
            return Answer(403, gateway_proxy_error(message, "server_error"))
        return VideoAnswer(job, chunked=self.chunked_content, cut_at=job.scenario.content_cut_at)

    def video_url(self, job: EmulatedJob, default: str) -> str:
        """The completed job's ``video_url``: the scenario's (``{api}`` and ``{id}`` filled in), else
        ``default``."""
        given = job.scenario.video_url
        if given is None:
            return default
        return given.replace("{api}", self.site.url).replace("{id}", quote(job.id, safe=""))

    # -- the profile's wording -------------------------------------------------------------

    def finish(self, request: ApiRequest, reply: Reply) -> Reply:
        """The last touch on every answer of the API listener; none by default."""
        return reply

    @abstractmethod
    def screen_form(self, request: ApiRequest, parts: list[Part]) -> Answer | None:
        """The refusal of a create form before the model's checks, or ``None`` to go on."""

    @abstractmethod
    def invalid_url(self, request: ApiRequest) -> Answer:
        """A method or path the API does not serve."""

    @abstractmethod
    def unreadable_body(self, request: ApiRequest, status: int, code: str, message: str) -> Answer:
        """A body that could not be read: ``status`` and ``code`` say why (400 or 413)."""

    @abstractmethod
    def unauthorized(self, request: ApiRequest, *, missing: bool) -> Answer:
        """No key (``missing``), or a wrong one."""

    @abstractmethod
    def rate_limited(self, request: ApiRequest, retry_after: float, model: str) -> Answer:
        """The ``rate_limit`` fault; ``retry_after`` is the scenario's, for profiles that send it."""

    @abstractmethod
    def injected_error(self, request: ApiRequest, status: int, model: str, *, content: bool) -> Answer:
        """A ``server_errors`` status on a GET (of ``/content`` when ``content``)."""

    @abstractmethod
    def create_refused(
        self, request: ApiRequest, failure: int | str, model: str, retry_after: float
    ) -> Answer:
        """A ``post_failure`` status or gateway error name on a create: nothing was created."""

    @abstractmethod
    def bad_form(self, request: ApiRequest, message: str) -> Answer:
        """A create body that is not readable multipart."""

    @abstractmethod
    def invalid_field(self, request: ApiRequest, error: InvalidField) -> Answer:
        """A create field the model does not take."""

    @abstractmethod
    def bad_marker(self, request: ApiRequest, message: str) -> Answer:
        """An ``[emu:...]`` marker the emulator cannot read."""

    @abstractmethod
    def unknown_task(self, request: ApiRequest, video_id: str, *, content: bool) -> Answer:
        """A retrieve (or, with ``content``, a download) of an id the server does not know."""

    @abstractmethod
    def job_answer(self, request: ApiRequest, job: EmulatedJob, *, created: bool) -> Answer:
        """The job object, as the create call (``created``) or a retrieve answers it."""

    @abstractmethod
    def check_variant(self, request: ApiRequest, query: str) -> Answer | None:
        """The refusal of a ``/content`` query, or ``None`` to serve it."""

    @abstractmethod
    def content_not_ready(self, request: ApiRequest, job: EmulatedJob) -> Answer:
        """``/content`` of a job that has not completed."""

    @abstractmethod
    def content_unavailable(self, request: ApiRequest, job: EmulatedJob) -> Answer:
        """``/content`` of a completed job without a video (``content_unavailable``)."""


def answer_cdn(backend: Backend, target: str, headers: Message) -> Answer | VideoAnswer:
    """The listener behind ``video_url``: public, addressed by token, refusing credentials as signed
    URLs do (so a client that leaks its key there is caught)."""
    if "Authorization" in headers:
        message = "Requests with an Authorization header are not allowed"
        return Answer(403, storage_error("AccessDenied", message), "application/xml")
    path = urlsplit(target).path
    token = path.removeprefix("/files/").removesuffix(".mp4")
    verdict = backend.redeem_token(token) if path.startswith("/files/") and path.endswith(".mp4") else None
    if verdict is None:
        body = storage_error("NoSuchKey", "The specified key does not exist.")
        return Answer(404, body, "application/xml")
    if verdict == "expired":
        return Answer(403, storage_error("AccessDenied", "Request has expired"), "application/xml")
    return VideoAnswer(verdict, chunked=verdict.scenario.chunked_download)
