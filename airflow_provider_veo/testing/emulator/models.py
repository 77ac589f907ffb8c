"""The emulator's own knowledge of CometAPI's Veo models and of what a create call may carry.

Written from ``API.md`` independently of :mod:`airflow_provider_veo.api`, so that the fake is not
derived from the client it checks; a test asserts that both tables agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_veo.testing.emulator.forms import Part

VIDEOS_PATH = "/v1/videos"
#: The model of a create call without one: the self-developed route's default.
MODEL_WHEN_ABSENT = "veo3.1"
#: The model named in errors about a request whose job is unknown.
DEFAULT_MODEL = "veo3.1-fast"
DEFAULT_SECONDS = "4"
DEFAULT_SIZE = "1280x720"
#: Reference images over this size are refused, as upstream Veo does.
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
#: Create bodies above this are refused with 413 (two 20 MiB references fit comfortably).
MAX_BODY_BYTES = 2 * MAX_REFERENCE_BYTES + 8 * 1024 * 1024
#: How many ``input_reference`` items a model missing from :data:`MODELS` takes.
UNKNOWN_MODEL_MAX_REFERENCES = 2

_OPENAI_ROUTE_SIZES = ("1280x720", "720x1280", "1920x1080", "3840x2160")
_HINT = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_HTTP_URL = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class EmulatedModel:
    """The rules of one model: ``sizes`` of ``None`` takes any ``WxH`` as an orientation hint."""

    name: str
    seconds: tuple[int, ...]
    sizes: tuple[str, ...] | None
    max_references: int
    #: The self-developed route renders 8-second clips only: another ``seconds`` is refused.
    fixed_seconds: bool = False


MODELS: dict[str, EmulatedModel] = {
    model.name: model
    for model in (
        EmulatedModel("veo3.1-fast", (4, 6, 8), _OPENAI_ROUTE_SIZES, max_references=1),
        EmulatedModel("veo3.1", (4, 6, 8), (*_OPENAI_ROUTE_SIZES, "16x9", "9x16"), max_references=2),
        *(
            EmulatedModel(name, (8,), None, max_references=2, fixed_seconds=True)
            for name in ("veo3.1-pro", "veo3-pro", "veo3-fast", "veo3")
        ),
    )
}


#: The upstream ids the gateway's Gemini channel reports in retrieves, by the model asked for.
UPSTREAM_MODELS: dict[str, str] = {
    "veo3.1-fast": "veo-3.1-fast-generate-preview",
    "veo3.1": "veo-3.1-generate-preview",
    "veo3-fast": "veo-3.0-fast-generate-001",
    "veo3": "veo-3.0-generate-001",
}


class InvalidField(ValueError):
    """A create field the emulated API refuses; ``field`` names it, for profiles that answer per field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def is_orientation_hint(size: str) -> bool:
    """Whether ``size`` is a ``WxH`` that says landscape or portrait (squares say neither)."""
    match = _HINT.match(size.strip().lower())
    return match is not None and 0 != int(match[1]) != int(match[2]) != 0


def is_http_url(text: str) -> bool:
    return bool(_HTTP_URL.match(text))


def is_image(head: bytes) -> bool:
    """Whether the bytes start like a PNG, JPEG or WebP file, the types Veo takes as a first frame."""
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


def _check_prompt(spec: EmulatedModel | None, prompt: str, default: str) -> str:
    if not prompt.strip():
        raise InvalidField("prompt", "prompt is required")
    return prompt


def _check_seconds(spec: EmulatedModel | None, seconds: str, default: str) -> str:
    seconds = seconds.strip()
    if spec is not None and spec.fixed_seconds:
        if seconds and seconds != "8":
            raise InvalidField("seconds", f"{spec.name} renders 8-second clips only, got {seconds!r}")
        return "8"
    if spec is not None and seconds and seconds not in {str(s) for s in spec.seconds}:
        allowed = ", ".join(str(s) for s in spec.seconds)
        raise InvalidField("seconds", f"seconds must be one of {allowed} for {spec.name}, got {seconds!r}")
    return seconds or default


def _check_size(spec: EmulatedModel | None, size: str, default: str) -> str:
    size = size.strip()
    if spec is not None and spec.sizes is not None:
        if size and size not in spec.sizes:
            allowed = ", ".join(spec.sizes)
            raise InvalidField("size", f"size must be one of {allowed} for {spec.name}, got {size!r}")
    elif spec is not None and size and not is_orientation_hint(size):
        raise InvalidField("size", f"size must be WxH, landscape or portrait (e.g. 16x9), got {size!r}")
    return size or default


#: The text fields of a create besides ``model``, each with its check: given the model's rules
#: (``None`` for a model missing from :data:`MODELS`), the value sent ("" when absent) and the
#: default, it returns the value the job reports, or raises :class:`InvalidField`.
FIELD_CHECKS: dict[str, Callable[[EmulatedModel | None, str, str], str]] = {
    "prompt": _check_prompt,
    "seconds": _check_seconds,
    "size": _check_size,
}


def check_fields(
    model: str, fields: Mapping[str, str], *, default_seconds: str = DEFAULT_SECONDS
) -> dict[str, str]:
    """Check the text fields of a create, as :data:`FIELD_CHECKS` says; return each as the job reports it.

    A model missing from :data:`MODELS` passes with any value: CometAPI adds models over time.
    """
    spec = MODELS.get(model)
    defaults = {"seconds": default_seconds, "size": DEFAULT_SIZE}
    checked = {}
    for name, check in FIELD_CHECKS.items():
        checked[name] = check(spec, fields.get(name, ""), defaults.get(name, ""))
    return checked


def check_references(model: str, references: list[Part]) -> None:
    """Check the ``input_reference`` parts: a file must be a small image, a text part an http(s) URL."""
    spec = MODELS.get(model)
    limit = spec.max_references if spec else UNKNOWN_MODEL_MAX_REFERENCES
    if len(references) > limit:
        raise InvalidField(
            "input_reference", f"{model} takes at most {limit} input_reference, got {len(references)}"
        )
    for position, part in enumerate(references):
        data = part.data
        if part.filename is None:
            if not is_http_url(data.decode("utf-8", "replace").strip()):
                raise InvalidField(
                    "input_reference", f"input_reference {position} must be an image or an http(s) URL"
                )
        elif len(data) > MAX_REFERENCE_BYTES:
            raise InvalidField(
                "input_reference",
                f"input_reference {position} is {len(data)} bytes, over {MAX_REFERENCE_BYTES}",
            )
        elif not is_image(data[:16]):
            raise InvalidField(
                "input_reference", f"input_reference {position} is not a PNG, JPEG or WebP image"
            )
