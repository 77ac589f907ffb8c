"""The knobs of the emulator: job outcomes and injected faults, and the prompt markers that set them.

A :class:`Scenario` is plain data; the backend reads its job fields when a job is created and uses
up its request faults as requests arrive. Markers let a DAG (which cannot reach the emulator object)
shape its own job from the prompt alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import unquote

from airflow_provider_veo.testing.emulator.bodies import GATEWAY_ERRORS, MIN_VIDEO_BYTES

#: The terminal statuses, which are also the outcomes a scenario can ask for.
TERMINAL_STATUSES = frozenset({"completed", "failed", "error"})
#: The values of ``Scenario.post_failure`` that are neither a status nor a gateway error's name.
POST_FAILURES = frozenset({"reset_before_create", "reset_after_create", "html_502"})
#: The post failures that create the job anyway: the client cannot tell whether it did.
POST_FAILURES_WITH_JOB = frozenset({"reset_after_create", "html_502"})

#: Short names accepted in prompt markers, beside the full :class:`Scenario` field names.
MARKER_ALIASES: dict[str, str] = {
    "polls": "polls_until_done",
    "wait": "seconds_until_done",
    "code": "error_code",
    "message": "error_message",
    "spelling": "status_spelling",
    "errors": "server_errors",
    "resets": "reset_gets",
    "expired": "expired_url_fetches",
    "bytes": "video_bytes",
    "hidden": "not_visible_polls",
    "cut": "content_cut_at",
    "denied": "model_access_denied_polls",
    "broken": "broken_polls",
    "gone": "model_unavailable",
    "trickle": "download_bytes_per_second",
    "announce": "announced_bytes",
}
#: The values of ``Scenario.model_unavailable``: the gateway's answers to a create for a dead model.
MODEL_UNAVAILABLE = {"retired": "model_retired", "no_channel": "model_not_found"}
#: The values of ``Scenario.broken_polls``: bodies a retrieve answers with HTTP 200.
BROKEN_BODIES = frozenset({"nested", "malformed", "not_utf8"})


@dataclass
class Scenario:
    """How the emulator behaves: job outcomes, and faults injected into requests.

    Job fields (read when a job is created): ``polls_until_done``, ``seconds_until_done``,
    ``outcome``, ``error_code``, ``error_message``, ``status_spelling``, ``missing_video_url``,
    ``truncate_download``, ``corrupt_download``, ``expired_url_fetches``, ``video_bytes``, ``video_id``,
    ``not_visible_polls``, ``error_only_body``, ``content_unavailable``, ``content_cut_at``,
    ``create_delay``, ``model_access_denied_polls``, ``internal_task_shape``, ``content_blocked``,
    ``video_url``, ``broken_polls``, ``model_unavailable``, ``download_bytes_per_second``,
    ``announced_bytes``, ``chunked_download``. Request faults (used up as requests arrive):
    ``rate_limit``, ``server_errors``, ``post_failure``, ``reset_gets``, ``slow_first_n``; ``latency``
    applies to every answer.
    """

    #: Retrieve GETs answered as not finished before the terminal one: ``queued`` first, then
    #: ``in_progress`` with rising progress (the new-api profile says ``unknown`` for ``queued`` until
    #: the job's second retrieve, and rounds progress down to 0, 10, 20, 30 or 50).
    polls_until_done: int = 2
    #: Finish on the wall clock instead (wins over ``polls_until_done``): ``queued`` for the first
    #: fifth of the time, then ``in_progress``.
    seconds_until_done: float | None = None
    #: ``completed``, ``failed`` or ``error`` (CometAPI's own terminal status; new-api says ``failed``).
    outcome: str = "completed"
    error_code: str = "content_policy_violation"
    error_message: str = "The prompt was blocked by the safety filter"
    #: Spell statuses differently, e.g. ``{"completed": "SUCCESS", "in_progress": "IN_PROGRESS"}``.
    status_spelling: dict[str, str] | None = None
    #: The next N API requests are answered 429 with ``Retry-After: retry_after`` (seconds, fractions
    #: too; the new-api profile sends no Retry-After, as the gateway does not).
    rate_limit: int = 0
    retry_after: float = 0.05
    #: The next API GETs are answered with these statuses, in order, each with an error body in the
    #: profile's shape.
    server_errors: list[int] = field(default_factory=list)
    #: The next create fails. An HTTP status: a JSON error in the profile's shape, nothing created
    #: (403 is the new-api profile's credit error, 402 the docs profile's). A name from
    #: :data:`~.bodies.GATEWAY_ERRORS` (``"pre_consume_token_quota_failed"``, ``"model_forbidden"``...):
    #: that error of new-api, nothing created. ``"reset_before_create"`` or ``"reset_after_create"``:
    #: the connection closes without an answer, before or after the job is created. ``"html_502"``:
    #: a proxy in front answers an HTML 502 page, and the job exists (the gateway behind it went on).
    post_failure: str | int | None = None
    #: The next N API GETs are dropped: the connection closes without an answer.
    reset_gets: int = 0
    #: Completed jobs carry no ``video_url``: the client must use ``/content``.
    missing_video_url: bool = False
    #: Downloads announce the full Content-Length, send half of it, then close.
    truncate_download: bool = False
    #: Downloads are served with their ``ftyp`` header zeroed, so they are not MP4s.
    corrupt_download: bool = False
    #: The CDN answers 403 "expired" to the first N fetches of this job's URLs; an expired URL stays
    #: expired, and each retrieve of the completed job hands out a fresh one.
    expired_url_fetches: int = 0
    #: Seconds added before every answer (benchmarks use ~0.05 to look like a remote API).
    latency: float = 0.0
    #: The next N API requests are delayed by ``slow_seconds`` more, e.g. past the client's timeout.
    slow_first_n: int = 0
    slow_seconds: float = 0.0
    #: Serve a generated body of this many bytes instead of the sample clip: a structurally valid MP4
    #: (the sample's ``ftyp`` and ``moov``, then an ``mdat`` of deterministic filler), so at least
    #: ``bodies.MIN_VIDEO_BYTES``.
    video_bytes: int | None = None
    #: Hand out this id instead of a generated one: for testing how clients cope with odd ids.
    video_id: str | None = None
    #: The first N GETs of the job (retrieve or ``/content``) answer as for an unknown id, as the
    #: gateway does while it has answered a create but not yet stored the task. They are not polls.
    not_visible_polls: int = 0
    #: Once the job failed, retrieves answer HTTP 200 ``{"error": {"message", "type"}, "id"}`` with no
    #: ``status`` (from ``error_message`` and ``error_code``), as the gateway's pass-through channels do.
    error_only_body: bool = False
    #: The completed job has no video: ``/content`` answers 502 forever (new-api: "Failed to resolve
    #: Gemini video URL", a clip blocked after it was billed) and the docs profile gives no ``video_url``.
    content_unavailable: bool = False
    #: ``/content`` stops after this many bytes. Chunked (new-api), the body still ends with its zero
    #: chunk: cut cleanly, as the gateway's 60-second copy deadline cuts it. With a Content-Length
    #: (docs), the connection closes short. The CDN behind ``video_url`` is not affected.
    content_cut_at: int | None = None
    #: Seconds a create takes to answer once it has created the job (the gateway retries channels
    #: with no deadline): a client that gives up earlier has still created, and paid for, the job.
    create_delay: float = 0.0
    #: The first N GETs of the job (retrieve or ``/content``) answer 403 "This token has no access to
    #: model", as gateways before June 2026 did to a model-limited key (later ones, while the task is
    #: not stored yet). Counted before ``not_visible_polls``; not polls. Emulator-wide, it also counts
    #: the GETs of ids the emulator does not know (``test_connection`` reads one).
    model_access_denied_polls: int = 0
    #: Retrieves answer the gateway's internal task view (``task_id``, ``platform``, an upper-case
    #: ``status``, ``progress`` as ``"50%"``, ``fail_reason``, ``finished_at``), as some 2026 releases did.
    internal_task_shape: bool = False
    #: ``/content`` answers 403 "request blocked: ..." (its guard against private upstream addresses).
    content_blocked: bool = False
    #: The completed job's ``video_url`` as given: ``{api}`` stands for the API's base URL, ``{id}`` for
    #: the job's escaped id (e.g. ``{api}/admin/keys``, ``http://169.254.169.254/latest/meta-data/``).
    video_url: str | None = None
    #: The next retrieves of the job answer HTTP 200 with these bodies, in order, without moving the job:
    #: ``nested`` (JSON nested 100,000 deep), ``malformed`` (cut-off JSON), ``not_utf8``.
    broken_polls: list[str] = field(default_factory=list)
    #: Every create of a job with this scenario is refused and creates nothing: ``retired`` (404 flat
    #: ``fail_to_fetch_task`` with Google's "... is no longer available") or ``no_channel`` (503
    #: ``model_not_found``), however often it is sent.
    model_unavailable: str | None = None
    #: Downloads (``video_url`` and ``/content``) send the body one byte at a time, this many bytes a
    #: second: a CDN trickling, which no per-read timeout ends.
    download_bytes_per_second: float | None = None
    #: Downloads sent with a Content-Length announce this many bytes, whatever they send (e.g. 1 TB).
    announced_bytes: int | None = None
    #: ``video_url`` sends the body chunked, without a Content-Length, as a proxy relaying a stream.
    chunked_download: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in TERMINAL_STATUSES:
            raise ValueError(f"outcome must be one of {sorted(TERMINAL_STATUSES)}, got {self.outcome!r}")
        named = POST_FAILURES | GATEWAY_ERRORS.keys()
        if isinstance(self.post_failure, str) and self.post_failure not in named:
            raise ValueError(
                f"post_failure must be an HTTP status or one of {sorted(named)}, got {self.post_failure!r}"
            )
        if self.video_bytes is not None and self.video_bytes < MIN_VIDEO_BYTES:
            raise ValueError(f"video_bytes must be at least {MIN_VIDEO_BYTES}")
        if self.content_cut_at is not None and self.content_cut_at < 0:
            raise ValueError("content_cut_at must not be negative")
        if self.model_unavailable is not None and self.model_unavailable not in MODEL_UNAVAILABLE:
            raise ValueError(f"model_unavailable must be one of {sorted(MODEL_UNAVAILABLE)}")
        if not set(self.broken_polls) <= BROKEN_BODIES:
            raise ValueError(f"broken_polls items must be among {sorted(BROKEN_BODIES)}")
        if self.download_bytes_per_second is not None and not self.download_bytes_per_second > 0:
            raise ValueError("download_bytes_per_second must be positive")


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    return lambda value: None if value.lower() == "none" else parse(value)


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got {value!r}")
    return lowered in ("true", "1", "yes")


def _parse_post_failure(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _parse_mapping(value: str) -> dict[str, str]:
    pairs = [item.split(":", 1) for item in value.split("|") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"expected key:value items, got {value!r}")
    return dict(pairs)


#: How a marker value is read, by the type annotation of its :class:`Scenario` field. A field whose
#: annotation is missing here fails the test that sets every field from a marker.
_CONVERTERS: dict[str, Callable[[str], object]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _parse_bool,
    "int | None": _optional(int),
    "float | None": _optional(float),
    "str | None": _optional(str),
    "str | int | None": _optional(_parse_post_failure),
    "list[int]": lambda value: [int(item) for item in value.split("|") if item],
    "list[str]": lambda value: [item for item in value.split("|") if item],
    "dict[str, str] | None": _optional(_parse_mapping),
}
_FIELD_TYPES = {f.name: str(f.type) for f in fields(Scenario)}


def parse_marker(prompt: str) -> dict[str, Any]:
    """The scenario overrides in a prompt's ``[emu:...]`` markers. Raises ``ValueError`` on a bad one.

    Keys are :class:`Scenario` field names or the aliases in :data:`MARKER_ALIASES`; lists and
    dictionaries use ``|`` between items and ``:`` between key and value; values are percent-decoded,
    so ``%2C`` stands for a comma and ``%5D`` for a closing bracket.
    """
    overrides: dict[str, Any] = {}
    start = prompt.find("[emu:")
    while start >= 0:
        end = prompt.find("]", start)
        if end < 0:
            raise ValueError("an [emu:...] marker is not closed")
        for pair in filter(None, (p.strip() for p in prompt[start + 5 : end].split(","))):
            key, separator, value = pair.partition("=")
            name = MARKER_ALIASES.get(key.strip(), key.strip())
            if not separator or name not in _FIELD_TYPES:
                raise ValueError(f"unknown emulator marker entry {pair!r}")
            try:
                overrides[name] = _CONVERTERS[_FIELD_TYPES[name]](unquote(value.strip()))
            except ValueError as error:
                raise ValueError(f"bad value in emulator marker entry {pair!r}: {error}") from None
        start = prompt.find("[emu:", end)
    replace(Scenario(), **overrides)  # Scenario's own checks (outcome, post_failure), raised here.
    return overrides
