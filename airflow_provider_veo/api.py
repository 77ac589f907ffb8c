"""Everything this provider knows about CometAPI's video API, in one place.

Models and their rules, request validation, the job object and its statuses, the error envelope
and which failures may be retried. The hook, the operators, the trigger and the emulator all read
these tables instead of keeping their own copies. Standard library only: importing it costs
nothing at DAG-parse time and the emulator can use it without Airflow.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cometapi.com"
DEFAULT_MODEL = "veo3.1-fast"
#: The documented default length, always sent: the gateway passes an absent ``seconds`` upstream,
#: where Veo renders and bills its own default of 8.
DEFAULT_SECONDS = 4
VIDEOS_PATH = "/v1/videos"

#: Sizes the OpenAI-compatible route renders (there is no portrait 1080p or 4K).
VIDEO_SIZES: tuple[str, ...] = ("1280x720", "720x1280", "1920x1080", "3840x2160")
#: Upstream Veo renders these only as 8-second clips; CometAPI does not say so, hence a warning.
EIGHT_SECOND_ONLY_SIZES = frozenset({"1920x1080", "3840x2160"})

#: The largest reference image sent; larger uploads are refused by upstream Veo anyway.
MAX_REFERENCE_BYTES = 20 * 1024 * 1024

#: Downloads are streamed in chunks of this size, so memory stays flat whatever the video weighs.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024

#: Polling defaults: a 6-minute job costs at most 25 GETs.
DEFAULT_POLL_INTERVAL = 15.0
DEFAULT_TIMEOUT = 60 * 60.0
DEFAULT_REQUEST_TIMEOUT = 60.0
#: A create may take minutes: the gateway has no relay timeout and tries other channels on failure,
#: and giving up early leaves a job that may exist.
DEFAULT_CREATE_TIMEOUT = 300.0


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts. ``sizes`` of ``None`` means any ``WxH`` used as an orientation hint."""

    name: str
    seconds: tuple[int, ...]
    sizes: tuple[str, ...] | None
    max_references: int
    #: The self-developed route renders fixed 8-second clips and has no ``seconds`` field.
    fixed_seconds: bool = False


def _self_developed(name: str) -> ModelSpec:
    return ModelSpec(name, seconds=(8,), sizes=None, max_references=2, fixed_seconds=True)


MODELS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("veo3.1-fast", seconds=(4, 6, 8), sizes=VIDEO_SIZES, max_references=1),
        # The self-developed route also serves veo3.1 and takes its orientation hints (seed 002's example).
        ModelSpec("veo3.1", seconds=(4, 6, 8), sizes=(*VIDEO_SIZES, "16x9", "9x16"), max_references=2),
        _self_developed("veo3.1-pro"),
        _self_developed("veo3-pro"),
        _self_developed("veo3-fast"),
        _self_developed("veo3"),
    )
}

#: Rules applied to a model this provider does not know yet: CometAPI adds models over time.
UNKNOWN_MODEL_MAX_REFERENCES = 2

_SIZE_PATTERN = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
_SCHEME_PATTERN = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class VeoError(Exception):
    """Base class of every error this provider raises."""

    #: Whether retrying the Airflow task can help. Operators turn ``False`` into a failure without retry.
    retryable = False


class VeoInputError(VeoError, ValueError):
    """A request parameter is invalid; raised before anything is sent."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"Invalid `{field_name}`: {message}")


class VeoAPIError(VeoError):
    """CometAPI answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code or None
        #: The gateway's ``X-Oneapi-Request-Id``: what CometAPI's support asks for.
        self.request_id = request_id or None
        super().__init__(message)


class VeoAuthenticationError(VeoAPIError):
    """The API key is missing, wrong, expired or out of its own quota (HTTP 401)."""


class VeoInsufficientCreditError(VeoAPIError):
    """The account or the key is out of credit (HTTP 402, or 403 naming quota or balance)."""


class VeoPermissionError(VeoAPIError):
    """The key may not do this (HTTP 403)."""


class VeoBadRequestError(VeoAPIError):
    """The API refused the request as invalid (HTTP 400, 404, or a 500 with code ``invalid_request``)."""


class VeoJobNotFoundError(VeoBadRequestError):
    """The API does not know the job (``task_not_exist``, or 404).

    Right after a create the gateway can answer this for a job it has not stored yet, so the waits
    treat it as "not visible yet" for a grace window before believing it.
    """


class VeoTransientError(VeoAPIError):
    """A failure that may pass: connection trouble, 429, or 5xx."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        job_may_exist: bool = True,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, request_id=request_id)
        self.retry_after = retry_after
        #: Whether a create that failed this way may still have started a paid job. False when the
        #: server provably took nothing: a refused connection, or any JSON error answer of the API
        #: (the gateway stores a task only after success and refunds its pre-charge on every error).
        self.job_may_exist = job_may_exist


class VeoSubmissionUncertainError(VeoAPIError):
    """A create request failed after the server may have received it: it may have started a paid job."""


class VeoGenerationFailedError(VeoAPIError):
    """The job ended with status ``failed`` or ``error``."""

    def __init__(self, video_id: str, status: str, code: str | None, message: str | None) -> None:
        self.video_id = video_id
        text = f"Video {video_id} ended with status {status!r}"
        if code:
            text += f", error code {code!r}"
        text += f": {message or _NO_REASON}"
        super().__init__(text, code=code)


#: What a failed job without an ``error`` object means: the gateway's Veo channels give no reason.
_NO_REASON = (
    "CometAPI gave no reason (its Veo channels report only the status; a prompt or image refused by "
    "Google's safety filters is the usual cause). Failed jobs are not billed."
)


class VeoTimeoutError(VeoError):
    """The job did not finish before the deadline. Retrying the task resumes waiting for the same job."""

    retryable = True


class VeoDownloadError(VeoError):
    """The video could not be fetched or failed verification; nothing was written to the destination."""

    retryable = True


class VeoVideoUnavailableError(VeoDownloadError):
    """A completed job whose video the API itself cannot deliver, after the hook's own attempts.

    The gateway answers this for a clip Google blocked after rendering (and billing) it, and keeps
    answering it: an Airflow retry would only loop.
    """

    retryable = False


#: Words of credit errors in English and Chinese ("额度": quota, "余额": balance), and the gateway's codes.
_CREDIT_WORDS = ("quota", "balance", "credit", "insufficient", "额度", "余额")
_CREDIT_CODES = frozenset({"insufficient_user_quota", "pre_consume_token_quota_failed"})
_REQUEST_ID_IN_MESSAGE = re.compile(r"\(request id: [^)]*\)")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # An HTTP date; rare enough to fall back to our own backoff.


@dataclass(frozen=True)
class ErrorBody:
    """An error answer's message and code, from whichever of the gateway's shapes it came in.

    ``from_api`` tells whether the body is the API's own JSON (envelope ``{"error": {...}}``, flat
    ``{"code", "message", "data"}``, or ``/content``'s ``{"error": {"message", "type"}}``) rather than
    an HTML or empty page from a proxy in front of it.
    """

    message: str
    code: str | None
    from_api: bool

    @classmethod
    def parse(cls, body: bytes | str) -> ErrorBody:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return cls(text.strip()[:500], None, from_api=False)
        error = payload.get("error")
        if isinstance(error, dict):  # the envelope, or /content's shape
            source: Mapping[str, Any] = error
        elif isinstance(error, str) and error:
            return cls(error, _optional_str(payload.get("code")), from_api=True)
        elif "message" in payload or "code" in payload:  # the flat task error
            source = payload
        else:
            return cls(text.strip()[:500], None, from_api=False)
        message = _optional_str(source.get("message")) or text.strip()[:500]
        return cls(message, _optional_str(source.get("code")), from_api=True)


def error_from_response(
    status_code: int,
    body: bytes | str,
    retry_after: str | None = None,
    *,
    request_id: str | None = None,
) -> VeoAPIError:
    """Turn an error answer into the typed exception, keeping the API's message, code and request id.

    ``request_id`` is the ``X-Oneapi-Request-Id`` header, added to the message when the body has none.
    """
    parsed = ErrorBody.parse(body)
    message, code = parsed.message, parsed.code
    if request_id and not _REQUEST_ID_IN_MESSAGE.search(message):
        message = f"{message} (request id: {request_id})"
    described = f"CometAPI answered HTTP {status_code}: {message or '(empty body)'}"
    if code:
        described += f" [code: {code}]"
    kwargs: dict[str, Any] = {"status_code": status_code, "code": code, "request_id": request_id}
    lowered = message.lower()
    if status_code == 401:
        return VeoAuthenticationError(
            described + " The connection's API key is invalid, expired, or has used up its own quota "
            "(CometAPI answers all three alike): check it in the CometAPI console.",
            **kwargs,
        )
    if status_code == 402 or (
        status_code == 403 and (code in _CREDIT_CODES or any(w in lowered for w in _CREDIT_WORDS))
    ):
        return VeoInsufficientCreditError(
            described + " The CometAPI account or this API key is out of credit: top it up (or raise the "
            "key's quota) before running this task again. No job was created.",
            **kwargs,
        )
    if status_code == 403:
        return VeoPermissionError(described, **kwargs)
    if status_code == 429:
        return VeoTransientError(
            described, retry_after=_parse_retry_after(retry_after), job_may_exist=False, **kwargs
        )
    if status_code == 500 and code == "invalid_request":
        return VeoBadRequestError(described, **kwargs)
    if status_code >= 500:
        return VeoTransientError(
            described,
            retry_after=_parse_retry_after(retry_after),
            job_may_exist=not parsed.from_api,
            **kwargs,
        )
    if code == "task_not_exist" or (status_code == 404 and "invalid url" not in lowered):
        return VeoJobNotFoundError(described, **kwargs)
    return VeoBadRequestError(described, **kwargs)


def connection_error(message: str, *, job_may_exist: bool) -> VeoTransientError:
    """The error for a request that got no HTTP answer at all."""
    return VeoTransientError(message, job_may_exist=job_may_exist)


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again; shared by the sync and async clients.

    A GET is retried on any transient error. A POST creates a paid job, so it is retried only when
    the server provably created nothing: a refused connection, a 429, or a 5xx answered with the
    API's own JSON error. Never after no answer or a proxy's page, when a job may exist.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay_before_retry(self, attempt: int, error: VeoError, *, method: str) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        if not isinstance(error, VeoTransientError) or attempt >= self.max_attempts:
            return None
        if method.upper() == "POST" and error.job_may_exist:
            return None
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay * 5) + backoff * 0.1
        return backoff

    def final_error(self, error: VeoError, *, method: str) -> VeoError:
        """The error to raise once retrying is over."""
        if method.upper() == "POST" and isinstance(error, VeoTransientError) and error.job_may_exist:
            return VeoSubmissionUncertainError(
                f"Creating the video failed after CometAPI may have received the request ({error}). "
                "A paid job may exist. It is not sent again, because that could start and bill a "
                "second job.",
                status_code=error.status_code,
                code=error.code,
                request_id=error.request_id,
            )
        return error


@dataclass(frozen=True)
class Send:
    """A step of :func:`request_flow`: send the request (attempt ``attempt``)."""

    attempt: int


@dataclass(frozen=True)
class Sleep:
    """A step of :func:`request_flow`: the request failed with ``error``; wait, then go on."""

    seconds: float
    error: VeoError
    next_attempt: int


def request_flow(policy: RetryPolicy, method: str) -> Generator[Send | Sleep, VeoError | None, None]:
    """One request's retries, free of I/O, driven by the sync and the async client alike.

    As httpx drives its auth flows: the flow yields :class:`Send`; the driver sends the request and
    sends back ``None`` on success (the flow ends) or the error; the flow then yields a
    :class:`Sleep` (advance it with ``next()`` once slept) or raises the error to give up with.
    """
    for attempt in itertools.count(1):
        error = yield Send(attempt)
        if error is None:
            return
        delay = policy.delay_before_retry(attempt, error, method=method)
        if delay is None:
            raise policy.final_error(error, method=method)
        yield Sleep(delay, error, attempt + 1)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoRequest:
    """A validated create request. ``references`` are the raw locations, loaded by the hook."""

    prompt: str
    model: str
    seconds: int | None
    size: str | None
    references: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def form_fields(self) -> list[tuple[str, str]]:
        """The scalar multipart fields, in the order the docs show them."""
        fields = [("model", self.model), ("prompt", self.prompt)]
        spec = MODELS.get(self.model)
        if self.seconds is not None and not (spec and spec.fixed_seconds):
            fields.append(("seconds", str(self.seconds)))
        if self.size is not None:
            fields.append(("size", self.size))
        return fields


def _allowed(values: Sequence[object]) -> str:
    return ", ".join(str(v) for v in values)


def _validate_seconds(value: object, spec: ModelSpec | None) -> int | None:
    if value is None or value == "":
        return None
    allowed = f" (model {spec.name!r} allows {_allowed(spec.seconds)})" if spec is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise VeoInputError(
            "seconds", f"expected a whole number of seconds{allowed}, got {type(value).__name__}"
        )
    try:
        number = float(value)
    except ValueError:
        raise VeoInputError(
            "seconds", f"expected a whole number of seconds{allowed}, got {value!r}"
        ) from None
    if not number.is_integer() or number <= 0:
        raise VeoInputError("seconds", f"expected a whole positive number of seconds{allowed}, got {value!r}")
    seconds = int(number)
    if spec is not None and seconds not in spec.seconds:
        raise VeoInputError("seconds", f"model {spec.name!r} allows {_allowed(spec.seconds)}, got {value!r}")
    return seconds


def _validate_size(value: object, spec: ModelSpec | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        allowed = _allowed(spec.sizes) if spec is not None and spec.sizes is not None else "'16x9' or '9x16'"
        raise VeoInputError("size", f"expected a 'WxH' string such as {allowed}, got {type(value).__name__}")
    size = value.strip().lower()
    if spec is not None and spec.sizes is not None:
        if size not in spec.sizes:
            raise VeoInputError("size", f"model {spec.name!r} allows {_allowed(spec.sizes)}, got {value!r}")
        return size
    if orientation(size) is None:
        raise VeoInputError(
            "size",
            f"expected 'WxH', landscape (W > H, e.g. '16x9') or portrait (W < H, e.g. '9x16'), got {value!r}",
        )
    return size


def orientation(size: str) -> str | None:
    """``"landscape"`` or ``"portrait"`` for a ``WxH`` hint; ``None`` for anything else, squares included."""
    match = _SIZE_PATTERN.match(size.strip().lower())
    if not match or int(match[1]) == 0 or int(match[2]) == 0 or int(match[1]) == int(match[2]):
        return None
    return "landscape" if int(match[1]) > int(match[2]) else "portrait"


def _reference_items(value: object) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return ()
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(items, (list, tuple)):
        raise VeoInputError(
            "input_reference",
            f"expected a path, URI or URL, or a list of one or two of them, got {type(value).__name__}",
        )
    result = []
    for position, item in enumerate(items):
        if isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str) or not item.strip():
            raise VeoInputError(
                "input_reference",
                f"item {position} must be a non-empty path, URI or URL, got {item!r}",
            )
        result.append(str(item).strip())
    return tuple(result)


def build_request(
    *,
    prompt: object,
    model: object = DEFAULT_MODEL,
    seconds: object = None,
    size: object = None,
    input_reference: object = None,
) -> VideoRequest:
    """Validate a create request against the model table. Raises :class:`VeoInputError`."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise VeoInputError("prompt", "a non-empty text prompt is required")
    if not isinstance(model, str) or not model.strip():
        raise VeoInputError("model", f"expected one of {_allowed(MODELS)} (or a newer model name)")
    model = model.strip()
    spec = MODELS.get(model)
    warnings = []
    if spec is None:
        warnings.append(
            f"Model {model!r} is not one this provider knows ({_allowed(MODELS)}); "
            "sending it as is, without checking seconds or size."
        )
    seconds_value = _validate_seconds(seconds, spec)
    if seconds_value is None and spec is not None and not spec.fixed_seconds:
        seconds_value = DEFAULT_SECONDS
    size_value = _validate_size(size, spec)
    references = _reference_items(input_reference)
    limit = spec.max_references if spec else UNKNOWN_MODEL_MAX_REFERENCES
    if len(references) > limit:
        what = "one (the first frame)" if limit == 1 else f"{limit} (first frame, then last frame)"
        raise VeoInputError(
            "input_reference",
            f"model {model!r} takes at most {what}, got {len(references)}"
            + (": use 'veo3.1' for first + last frame" if model == "veo3.1-fast" else ""),
        )
    if spec and spec.fixed_seconds and seconds_value is not None:
        warnings.append(f"Model {model!r} always renders 8-second clips; `seconds` is not sent.")
    if size_value in EIGHT_SECOND_ONLY_SIZES and (seconds_value or 4) != 8:
        warnings.append(
            f"Upstream Veo renders {size_value} only as 8-second clips; asking for "
            f"{seconds_value or DEFAULT_SECONDS} seconds may fail or be changed by CometAPI."
        )
    if len(references) == 2:
        warnings.append(
            "Two input_reference images (first and last frame): some CometAPI channels use only the "
            "first and drop the last without saying so; nothing in the answer shows which one served it."
        )
    if len(references) == 2 and spec and not spec.fixed_seconds and seconds_value not in (None, 8):
        warnings.append(
            "First + last frame uses CometAPI's self-developed route, which renders 8-second clips."
        )
    return VideoRequest(
        prompt=prompt,
        model=model,
        seconds=seconds_value,
        size=size_value,
        references=references,
        warnings=tuple(warnings),
    )


def reference_kind(location: str) -> str:
    """``"url"`` for http(s), ``"uri"`` for another object-storage scheme, ``"path"`` otherwise."""
    if _URL_PATTERN.match(location):
        return "url"
    if _SCHEME_PATTERN.match(location):
        return "uri"
    return "path"


def sniff_image_type(head: bytes) -> str | None:
    """The content type of a PNG, JPEG or WebP image from its first bytes, else ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_reference_image(position: int, location: str, content: bytes) -> str:
    """Check a loaded reference image and return its content type. Raises :class:`VeoInputError`."""
    if len(content) > MAX_REFERENCE_BYTES:
        raise VeoInputError(
            "input_reference",
            f"item {position} ({location}) is {len(content)} bytes; "
            f"the limit is {MAX_REFERENCE_BYTES // (1024 * 1024)} MiB",
        )
    content_type = sniff_image_type(content[:16])
    if content_type is None:
        raise VeoInputError(
            "input_reference",
            f"item {position} ({location}) is not a PNG, JPEG or WebP image",
        )
    return content_type


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


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


def _optional_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _optional_int(value: object) -> int | None:
    try:
        return None if value is None or value == "" else int(float(str(value)))
    except ValueError:
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
            error_code = _optional_str(error.get("code")) or _optional_str(error.get("type"))
            error_message = _optional_str(error.get("message"))
        elif error:
            error_message = str(error)
        status = _optional_str(payload.get("status"))
        if status is None:
            # The gateway answers a job whose upstream failed with only its error, and HTTP 200.
            status = "failed" if error else "unknown"
        return cls(
            video_id=video_id,
            status=status,
            progress=_optional_int(payload.get("progress")),
            model=_optional_str(payload.get("model")),
            seconds=_optional_str(payload.get("seconds")),
            size=_optional_str(payload.get("size")),
            video_url=_optional_str(payload.get("video_url")),
            error_code=error_code,
            error_message=error_message,
            created_at=_optional_int(payload.get("created_at")),
            completed_at=_optional_int(payload.get("completed_at")),
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

    def info(self, msg: str, *args: object) -> None: ...
    def warning(self, msg: str, *args: object) -> None: ...


#: What one poll of a job can end in, as :class:`JobWatch` takes it.
PollOutcome = VideoJob | VeoTransientError | VeoJobNotFoundError

#: How long after its create a job answered "not found" is taken as "not stored yet": the gateway
#: answers the create before it stores the task.
DEFAULT_VISIBILITY_GRACE = 60.0


class JobWatch:
    """The polling decisions the trigger and the synchronous waits share, free of any I/O.

    Each poll's outcome goes in; out comes either the seconds to sleep before the next poll or the
    final event. Status and progress are logged when they change, an unknown status once.
    "Not found" counts as "not stored yet" until ``visible_by`` (epoch seconds; ``None``: never).
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
    ) -> None:
        self.video_id = video_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.visible_by = visible_by
        self._log = log
        self._clock = clock
        self._last: tuple[str, int | None] | None = None
        self._unknown_statuses: set[str] = set()
        self._said_not_visible = False

    def after_poll(self, outcome: PollOutcome) -> float | dict[str, Any]:
        """Seconds to sleep before polling again, or the event payload once there is an answer."""
        if isinstance(outcome, VeoJobNotFoundError):
            if self.visible_by is None or self._clock() >= self.visible_by:
                return error_event(self.video_id, self._not_found(outcome))
            if not self._said_not_visible:
                self._said_not_visible = True
                self._log.info(
                    "Video %s is not visible yet (CometAPI stores a job just after answering its create); "
                    "polling on",
                    self.video_id,
                )
        elif isinstance(outcome, VeoTransientError):
            # The job is paid for and still rendering: an outage is waited out until the deadline.
            self._log.warning("Video %s: could not read the job (%s); polling on", self.video_id, outcome)
        else:
            self._describe(outcome)
            if outcome.state.is_terminal:
                return job_event(outcome)
        seconds_left = self.end_time - self._clock()
        if seconds_left <= 0:
            return timeout_event(self.video_id)
        # Never sooner than the interval; up to 10% later, so a thousand triggers drift out of lock-step.
        return min(self.poll_interval * random.uniform(1.0, 1.1), seconds_left)

    def _not_found(self, error: VeoJobNotFoundError) -> VeoJobNotFoundError:
        after = " after the grace window for new jobs" if self.visible_by is not None else ""
        return VeoJobNotFoundError(
            f"CometAPI does not know video {self.video_id}{after} ({error}). Check that the connection "
            "points at the account and base URL that created it; a job the gateway never stored is "
            "refunded.",
            status_code=error.status_code,
            code=error.code,
            request_id=error.request_id,
        )

    def _describe(self, job: VideoJob) -> None:
        current = (job.status, job.progress)
        if current == self._last:
            return
        self._last = current
        progress = "" if job.progress is None else f", progress {job.progress}%"
        if job.state is not JobState.UNKNOWN:
            self._log.info("Video %s: status %r%s", job.video_id, job.status, progress)
        elif job.status not in self._unknown_statuses:
            self._unknown_statuses.add(job.status)
            self._log.warning(
                "Video %s: status %r%s is not one this provider knows; treating it as still running",
                job.video_id,
                job.status,
                progress,
            )


# Events: what a trigger hands back to the task. Everything the resumed task needs travels in them,
# since ``dag.test()`` drops the kwargs given to ``defer()``.


def job_event(job: VideoJob) -> dict[str, Any]:
    """The event for a terminal job."""
    status = "success" if job.state is JobState.SUCCEEDED else "failed"
    message = "" if status == "success" else str(job.failure())
    return {"status": status, "video_id": job.video_id, "job": job.to_dict(), "message": message}


def timeout_event(video_id: str) -> dict[str, Any]:
    return {
        "status": "timeout",
        "video_id": video_id,
        "job": None,
        "message": f"Video {video_id} did not finish before the deadline; the job may still be running.",
    }


def error_event(video_id: str, error: VeoError) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Connections, URLs, files
# --------------------------------------------------------------------------------------------


def base_url_from(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """The API's base URL from a connection's fields: scheme defaults to https, a trailing /v1 is dropped."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if not _SCHEME_PATTERN.match(host):
        host = f"{(schema or 'https').strip()}://{host}"
    if not _URL_PATTERN.match(host):
        raise VeoInputError("host", f"the base URL must start with http:// or https://, got {host!r}")
    host = host.rstrip("/")
    if host.lower().endswith("/v1"):
        host = host[:-3].rstrip("/")
    if port and not re.search(r":\d+$", host.split("://", 1)[1]):
        host = f"{host}:{port}"
    return host


def excerpt(text: str, limit: int = 80) -> str:
    """The start of a prompt, on one line, for log lines and error messages."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def video_path(video_id: str) -> str:
    """The retrieve path of a job; ids may hold ``:`` and are escaped as a path segment."""
    from urllib.parse import quote

    if video_id in (".", ".."):  # a dot segment: clients and proxies resolve it away, %2E or not
        raise VeoAPIError(f"CometAPI answered the video id {video_id!r}, which cannot be used in a URL")
    return f"{VIDEOS_PATH}/{quote(video_id, safe=':')}"


_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_FILENAME_STEM = 150


def video_filename(video_id: str) -> str:
    """A file name for a job's MP4 that cannot leave its folder, whatever the id holds."""
    stem = _UNSAFE_FILENAME_CHARS.sub("_", video_id).strip("._") or "video"
    if stem != video_id or len(stem) > _MAX_FILENAME_STEM:
        digest = hashlib.sha256(video_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = f"{stem[:_MAX_FILENAME_STEM]}-{digest}"
    return f"{stem}.mp4"


def looks_like_mp4(head: bytes) -> bool:
    """True when the bytes start with an ISO base media ``ftyp`` box, as every MP4 does."""
    return len(head) >= 8 and head[4:8] == b"ftyp"
