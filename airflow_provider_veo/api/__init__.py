"""Everything this provider knows about CometAPI's video API, in one place.

Models and their rules, request validation, the job object and its statuses, the error envelope
and which failures may be retried. The hook, the operators, the sensor and the trigger all read
these tables instead of keeping their own copies. Standard library only: importing it costs
nothing at DAG-parse time.

The modules: ``errors`` (the exceptions and how an error answer maps onto them), which the others
import and which imports none of them; ``retry`` (the request flow without I/O); ``models`` (the
model table and request validation); ``arguments`` (the operators' other
arguments); ``jobs`` (the job, the polling decisions, the trigger's
events); ``urls`` (base URL, paths, file names). Every name is re-exported here: import from
``airflow_provider_veo.api``.
"""

from __future__ import annotations

import logging

from airflow_provider_veo.api.errors import (
    ErrorBody,
    VeoAPIError,
    VeoAuthenticationError,
    VeoBadRequestError,
    VeoDownloadError,
    VeoError,
    VeoGenerationFailedError,
    VeoInputError,
    VeoInsufficientCreditError,
    VeoJobNotFoundError,
    VeoModelAccessError,
    VeoModelUnavailableError,
    VeoPermissionError,
    VeoSubmissionLimitError,
    VeoSubmissionUncertainError,
    VeoTimeoutError,
    VeoTransientError,
    VeoVideoUnavailableError,
    connection_error,
    error_from_response,
    shown,
)
from airflow_provider_veo.api.jobs import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_VISIBILITY_GRACE,
    JobEvent,
    JobState,
    JobWatch,
    Logger,
    PollOutcome,
    VideoJob,
    error_event,
    job_event,
    job_from_event,
    job_state,
    timeout_event,
)
from airflow_provider_veo.api.models import (
    DEFAULT_MODEL,
    DEFAULT_SECONDS,
    DEPRECATED_MODELS,
    EIGHT_SECOND_ONLY_SIZES,
    LONG_PROMPT_CHARS,
    MAX_REFERENCE_BYTES,
    MAX_SECONDS,
    MODELS,
    UNKNOWN_MODEL_MAX_REFERENCES,
    VIDEO_SIZES,
    ModelSpec,
    VideoRequest,
    build_request,
    check_reference_image,
    check_text,
    describe,
    orientation,
    request_fingerprint,
    sniff_image_type,
)
from airflow_provider_veo.api.results import (
    PROMPT_EXCERPT_CHARS,
    StoredVideo,
    Usage,
    model_names,
    prompt_fields,
)
from airflow_provider_veo.api.retry import RetryPolicy, Send, Sleep, request_flow
from airflow_provider_veo.api.urls import (
    DEFAULT_BASE_URL,
    DEFAULT_CREATE_TIMEOUT,
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    DOWNLOAD_CHUNK_BYTES,
    VIDEOS_PATH,
    base_url_from,
    content_path,
    excerpt,
    forbidden_video_host,
    is_content_route,
    metadata_address,
    reference_kind,
    video_filename,
    video_path,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CREATE_TIMEOUT",
    "DEFAULT_DOWNLOAD_TIMEOUT",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MODEL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_SECONDS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VISIBILITY_GRACE",
    "DEPRECATED_MODELS",
    "DOWNLOAD_CHUNK_BYTES",
    "EIGHT_SECOND_ONLY_SIZES",
    "LONG_PROMPT_CHARS",
    "MAX_REFERENCE_BYTES",
    "MAX_SECONDS",
    "MODELS",
    "PROMPT_EXCERPT_CHARS",
    "UNKNOWN_MODEL_MAX_REFERENCES",
    "VIDEOS_PATH",
    "VIDEO_SIZES",
    "ErrorBody",
    "JobEvent",
    "JobState",
    "JobWatch",
    "Logger",
    "ModelSpec",
    "PollOutcome",
    "RetryPolicy",
    "Send",
    "Sleep",
    "StoredVideo",
    "Usage",
    "VeoAPIError",
    "VeoAuthenticationError",
    "VeoBadRequestError",
    "VeoDownloadError",
    "VeoError",
    "VeoGenerationFailedError",
    "VeoInputError",
    "VeoInsufficientCreditError",
    "VeoJobNotFoundError",
    "VeoModelAccessError",
    "VeoModelUnavailableError",
    "VeoPermissionError",
    "VeoSubmissionLimitError",
    "VeoSubmissionUncertainError",
    "VeoTimeoutError",
    "VeoTransientError",
    "VeoVideoUnavailableError",
    "VideoJob",
    "VideoRequest",
    "base_url_from",
    "build_request",
    "check_reference_image",
    "check_text",
    "connection_error",
    "content_path",
    "describe",
    "error_event",
    "error_from_response",
    "excerpt",
    "forbidden_video_host",
    "is_content_route",
    "job_event",
    "job_from_event",
    "job_state",
    "log",
    "metadata_address",
    "model_names",
    "orientation",
    "prompt_fields",
    "reference_kind",
    "request_fingerprint",
    "request_flow",
    "shown",
    "sniff_image_type",
    "timeout_event",
    "video_filename",
    "video_path",
]

# Tracebacks, reprs and pickles name a class by the path users import it from, as before the split.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and _value.__module__.startswith(f"{__name__}."):
        _value.__module__ = __name__
del _name, _value
