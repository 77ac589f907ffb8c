"""The models CometAPI serves for Veo, what each accepts, and the validation of a create request.

Everything here runs before anything is sent, so a bad parameter fails the task at once, with a
message naming the parameter, instead of after a paid request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from airflow_provider_veo.api.errors import VeoInputError

DEFAULT_MODEL = "veo3.1-fast"
#: CometAPI's stated default length, always sent: the gateway passes an absent ``seconds`` upstream,
#: where Veo renders and bills its own default of 8.
DEFAULT_SECONDS = 4

#: Sizes the OpenAI-compatible route renders (there is no portrait 1080p or 4K).
VIDEO_SIZES: tuple[str, ...] = ("1280x720", "720x1280", "1920x1080", "3840x2160")
#: Upstream Veo renders these only as 8-second clips; CometAPI does not say so, hence a warning.
EIGHT_SECOND_ONLY_SIZES = frozenset({"1920x1080", "3840x2160"})

#: The largest reference image sent; larger uploads are refused by upstream Veo anyway.
MAX_REFERENCE_BYTES = 20 * 1024 * 1024


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
        # veo3.1 is also served by the self-developed route, so it takes that route's orientation hints.
        ModelSpec("veo3.1", seconds=(4, 6, 8), sizes=(*VIDEO_SIZES, "16x9", "9x16"), max_references=2),
        _self_developed("veo3.1-pro"),
        _self_developed("veo3-pro"),
        _self_developed("veo3-fast"),
        _self_developed("veo3"),
    )
}

#: Ids still in the table whose upstream Google has retired (Veo 3.0 on the Gemini API, 2026-06-30):
#: CometAPI answers them only while it maps them to a live model. A create with one is logged with this
#: advice, and a refusal of it names it. The Veo 3.1 ids map to Google's 3.1 models, whose *preview*
#: ids were retired on 2026-10-22; CometAPI serves them under these names from the released ones.
DEPRECATED_MODELS: Mapping[str, str] = {
    name: "Google retired Veo 3.0 on 2026-06-30; CometAPI serves it only while it maps it to a live "
    "model: use 'veo3.1-fast' or 'veo3.1'"
    for name in ("veo3-pro", "veo3-fast", "veo3")
}

#: Rules applied to a model this provider does not know yet: CometAPI adds models over time.
UNKNOWN_MODEL_MAX_REFERENCES = 2

_SIZE_PATTERN = re.compile(r"^(\d{1,5})x(\d{1,5})$")


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
        """The scalar multipart fields, in CometAPI's order: model, prompt, seconds, size."""
        fields = [("model", self.model), ("prompt", self.prompt)]
        spec = MODELS.get(self.model)
        if self.seconds is not None and not (spec and spec.fixed_seconds):
            fields.append(("seconds", str(self.seconds)))
        if self.size is not None:
            fields.append(("size", self.size))
        return fields


def _allowed(values: Iterable[object]) -> str:
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


#: Above this a prompt is sent with a warning: Veo's prompt is about a thousand tokens, and a token
#: is some four characters of English; no hard limit is published for CometAPI's route.
LONG_PROMPT_CHARS = 4000


def request_fingerprint(request: VideoRequest, reference_sha256s: Sequence[str]) -> str:
    """What identifies a request across tries: a cleared task whose request changed must not reuse
    the job of the old one. Reference images count by content, not by location."""
    canonical = json.dumps(
        [request.model, request.prompt, request.seconds, request.size, list(reference_sha256s)],
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


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
    if len(prompt) > LONG_PROMPT_CHARS:
        warnings.append(
            f"The prompt is {len(prompt)} characters long. Veo reads about 1,000 tokens of prompt (some "
            f"4,000 characters of English); CometAPI publishes no limit, so it is sent as is, but the "
            "model may ignore or refuse the rest."
        )
    return VideoRequest(
        prompt=prompt,
        model=model,
        seconds=seconds_value,
        size=size_value,
        references=references,
        warnings=tuple(warnings),
    )


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
