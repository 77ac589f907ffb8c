"""The errors this provider raises, and how an error answer of CometAPI becomes one of them.

The bottom of the package: the other modules import it, and it imports none of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class VeoError(Exception):
    """Base class of every error this provider raises."""

    #: Whether retrying the Airflow task can help. Operators turn ``False`` into a failure without retry.
    retryable = False


class VeoInputError(VeoError, ValueError):
    """A request parameter is invalid; raised before anything is sent."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        #: What is wrong with the field, without its name.
        self.reason = message
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


class VeoModelAccessError(VeoPermissionError):
    """The key is limited to certain models and the gateway would not match this one (HTTP 403
    "This token has no access to model").

    Gateways before June 2026 answered this to every status read of a model-limited key, and later
    ones still do for a job not stored yet; the waits treat it as "not visible yet" for the grace
    window after their own create, then fail naming the id.
    """


class VeoBadRequestError(VeoAPIError):
    """The API refused the request as invalid (HTTP 400, 404, or a 500 with code ``invalid_request``)."""


class VeoModelUnavailableError(VeoBadRequestError):
    """The model cannot be used: retired upstream (HTTP 404 "... is no longer available"), or no
    channel serves it after every attempt (HTTP 503 ``model_not_found``). Nothing was created."""


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
        text = f"Video {shown(video_id)} ended with status {status!r}"
        if code:
            text += f", error code {code!r}"
        text += f": {message or _NO_REASON}"
        super().__init__(text, code=code)


#: What a failed job without an ``error`` object means: the gateway's Veo channels give no reason.
_NO_REASON = (
    "CometAPI gave no reason (its Veo channels report only the status; a prompt or image refused by "
    "Google's safety filters is the usual cause). Failed jobs are not billed."
)


class VeoSubmissionLimitError(VeoError):
    """A task has already paid for ``max_submissions`` jobs across its tries: it submits no more."""


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
#: The gateway's words for a model-limited key, for a model Google retired, and for /content's guard.
_NO_MODEL_ACCESS = "no access to model"
_NO_LONGER_AVAILABLE = "no longer available"
_REQUEST_BLOCKED = "request blocked"
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
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python parses
            payload = None
        if not isinstance(payload, dict):
            return cls(text.strip()[:500], None, from_api=False)
        error = payload.get("error")
        if isinstance(error, dict):  # the envelope, or /content's shape
            source: Mapping[str, Any] = error
        elif isinstance(error, str) and error:
            return cls(error, optional_str(payload.get("code")), from_api=True)
        elif "message" in payload or "code" in payload:  # the flat task error
            source = payload
        else:
            return cls(text.strip()[:500], None, from_api=False)
        message = optional_str(source.get("message")) or text.strip()[:500]
        return cls(message, optional_str(source.get("code")), from_api=True)


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
    if status_code == 403 and _NO_MODEL_ACCESS in lowered:
        return VeoModelAccessError(
            described + " The API key is limited to certain models (a setting of the key in the CometAPI "
            "console).",
            **kwargs,
        )
    if status_code == 403 and _REQUEST_BLOCKED in lowered:
        return VeoPermissionError(
            described + " CometAPI refused to fetch the file from where it is stored (its guard against "
            "private addresses): this is on CometAPI's side, and trying again does not help; ask its "
            "support with the video id and this request id.",
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
    if status_code == 404 and _NO_LONGER_AVAILABLE in lowered:
        return VeoModelUnavailableError(
            described + " Google has retired this model, so CometAPI cannot serve it and created no "
            "job: choose a current model (see the provider's model table).",
            **kwargs,
        )
    if code == "task_not_exist" or (status_code == 404 and "invalid url" not in lowered):
        return VeoJobNotFoundError(described, **kwargs)
    return VeoBadRequestError(described, **kwargs)


def connection_error(message: str, *, job_may_exist: bool) -> VeoTransientError:
    """The error for a request that got no HTTP answer at all."""
    return VeoTransientError(message, job_may_exist=job_may_exist)


def shown(text: str) -> str:
    """``text`` safe for one log line or terminal: control characters (CR, LF, ESC...) escaped as
    ``\\n``, ``\\x1b``..., so an id chosen by the server cannot forge lines or colour a terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def optional_str(value: object) -> str | None:
    """A JSON field as text; ``None`` when it is absent or empty."""
    return None if value is None or value == "" else str(value)
