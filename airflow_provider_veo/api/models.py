"""The models CometAPI serves for Veo, what each accepts, and the validation of a create request.

Everything here runs before anything is sent, so a bad parameter fails the task at once, with a
message naming the parameter, instead of after a paid request.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

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
_WHOLE_NUMBER = re.compile(r"^\+?(\d{1,9})(\.0*)?$")

#: The longest clip asked of a model this provider does not know yet; Veo renders at most 8 s.
MAX_SECONDS = 60

#: Above this a prompt is sent with a warning: Veo's prompt is about a thousand tokens, and a token
#: is some four characters of English; no hard limit is published for CometAPI's route.
LONG_PROMPT_CHARS = 4000


def describe(value: object) -> str:
    """A value as an error message shows it: short, and safe for numbers of any size.

    ``repr`` of an integer beyond 4,300 digits raises, and a 10 MB string would fill the log.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        text = repr(value)
        return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"
    return f"a {type(value).__name__}"


def check_text(field_name: str, text: str) -> str:
    """Refuse text that cannot be sent as UTF-8 (a lone surrogate, left by a wrongly decoded file)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise VeoInputError(
            field_name,
            f"character {exc.start} ({text[exc.start]!r}) is a lone surrogate, which cannot be sent as "
            "UTF-8; it usually comes from text read with the wrong encoding: fix or remove it",
        ) from None
    return text


def _allowed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


# The checks of the request's fields, one per field: each takes the value given and the model's rules
# (``None`` for a model this provider does not know) and returns the value as sent, or raises.


def _check_model(value: object, spec: ModelSpec | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise VeoInputError("model", f"expected one of {_allowed(MODELS)} (or a newer model name)")
    return check_text("model", value.strip())


def _check_prompt(value: object, spec: ModelSpec | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise VeoInputError("prompt", "a non-empty text prompt is required")
    return check_text("prompt", value)


def _check_seconds(value: object, spec: ModelSpec | None) -> int | None:
    if value is None or value == "":
        return DEFAULT_SECONDS if spec is not None and not spec.fixed_seconds else None
    allowed = _allowed(spec.seconds) if spec is not None else f"a whole number from 1 to {MAX_SECONDS}"
    rule = f"model {spec.name!r} allows {allowed}" if spec is not None else allowed
    wanted = f"expected a whole number of seconds ({rule})"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise VeoInputError("seconds", f"{wanted}, got {type(value).__name__}")
    seconds: int | None = None
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        seconds = int(value) if math.isfinite(value) and value.is_integer() else None
    elif match := _WHOLE_NUMBER.match(value.strip()):
        seconds = int(match[1])
    if seconds is None or seconds <= 0:
        raise VeoInputError("seconds", f"{wanted}, got {describe(value)}")
    if spec is not None and seconds not in spec.seconds:
        raise VeoInputError("seconds", f"{rule}, got {describe(value)}")
    if seconds > MAX_SECONDS:
        raise VeoInputError("seconds", f"{wanted}, got {describe(value)}")
    return seconds


def _check_size(value: object, spec: ModelSpec | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        allowed = _allowed(spec.sizes) if spec is not None and spec.sizes is not None else "'16x9' or '9x16'"
        raise VeoInputError("size", f"expected a 'WxH' string such as {allowed}, got {type(value).__name__}")
    size = value.strip().lower()
    if spec is not None and spec.sizes is not None:
        if size not in spec.sizes:
            allowed = _allowed(spec.sizes)
            raise VeoInputError("size", f"model {spec.name!r} allows {allowed}, got {describe(value)}")
        return size
    if orientation(size) is None:
        raise VeoInputError(
            "size",
            "expected 'WxH', landscape (W > H, e.g. '16x9') or portrait (W < H, e.g. '9x16'), "
            f"got {describe(value)}",
        )
    return size


def orientation(size: str) -> str | None:
    """``"landscape"`` or ``"portrait"`` for a ``WxH`` hint; ``None`` for anything else, squares included."""
    match = _SIZE_PATTERN.match(size.strip().lower())
    if not match or int(match[1]) == 0 or int(match[2]) == 0 or int(match[1]) == int(match[2]):
        return None
    return "landscape" if int(match[1]) > int(match[2]) else "portrait"


def _check_references(value: object, spec: ModelSpec | None) -> tuple[str, ...]:
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
                f"item {position} must be a non-empty path, URI or URL, got {describe(item)}",
            )
        if "://" in item:  # a URL or URI is sent or resolved as text; a local name may hold any bytes
            check_text("input_reference", item)
        result.append(item.strip())
    limit = spec.max_references if spec else UNKNOWN_MODEL_MAX_REFERENCES
    if len(result) > limit:
        name = spec.name if spec else "an unknown model"
        what = "one (the first frame)" if limit == 1 else f"{limit} (first frame, then last frame)"
        raise VeoInputError(
            "input_reference",
            f"model {name!r} takes at most {what}, got {len(result)}"
            + (": use 'veo3.1' for first + last frame" if name == "veo3.1-fast" else ""),
        )
    return tuple(result)


def _argument(
    check: Callable[[object, ModelSpec | None], object], *, name: str = "", sent: bool = True
) -> Any:
    """A field of :class:`VideoRequest`: its check, the argument name users pass it by (the field's
    own name unless given), and whether it is one of the multipart form's text fields."""
    return field(metadata={"check": check, "argument": name, "form": sent})


@dataclass(frozen=True, kw_only=True)
class VideoRequest:
    """A validated create request: the one declaration of what a request carries.

    Each field below is one argument of the operators and of :meth:`VeoHook.create_video`, checked by
    its own function when the request is built; the multipart form (:meth:`form_fields`) and the
    fingerprint that tells a retry whether an earlier job is this request's (:meth:`fingerprint`) are
    read from these fields, in this order, so a new field is declared here and nowhere else.
    ``references`` are the raw locations of the reference images (argument ``input_reference``),
    read and checked by the hook, and sent as files after the text fields.
    """

    model: str = _argument(_check_model)
    prompt: str = _argument(_check_prompt)
    seconds: int | None = _argument(_check_seconds)
    size: str | None = _argument(_check_size)
    references: tuple[str, ...] = _argument(_check_references, name="input_reference", sent=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def arguments(cls) -> dict[str, str]:
        """The arguments a request is built from, by the field each fills: ``{"prompt": "prompt", …,
        "input_reference": "references"}``."""
        return {f.metadata["argument"] or f.name: f.name for f in fields(cls) if "check" in f.metadata}

    @classmethod
    def form_names(cls) -> tuple[str, ...]:
        """The names of the multipart form's text fields, in the order they are sent."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("form"))

    @classmethod
    def build(cls, **arguments: object) -> VideoRequest:
        """Check every argument against the model table and return the request. Raises
        :class:`VeoInputError` naming the first argument that is wrong."""
        names = cls.arguments()
        unknown = sorted(set(arguments) - set(names))
        if unknown:
            raise TypeError(f"unexpected argument(s) {unknown}; a request takes {sorted(names)}")
        model = _check_model(arguments.get("model", DEFAULT_MODEL), None)
        spec = MODELS.get(model)
        values: dict[str, Any] = {"model": model}
        for argument, name in names.items():
            if name != "model":
                check = cls.__dataclass_fields__[name].metadata["check"]
                values[name] = check(arguments.get(argument), spec)
        request = cls(**values)
        return replace(request, warnings=request._warnings(spec))

    @classmethod
    def check_known(cls, arguments: Mapping[str, object]) -> None:
        """Check the arguments known when a task is defined, before its templates are rendered (those
        are left out of ``arguments``). Without a known model, the rules of an unknown model apply:
        the loosest, so nothing valid once rendered is refused early."""
        spec = MODELS.get(_check_model(arguments["model"], None)) if "model" in arguments else None
        for argument, name in cls.arguments().items():
            if argument in arguments and name != "model":
                cls.__dataclass_fields__[name].metadata["check"](arguments[argument], spec)

    def form_fields(self) -> list[tuple[str, str]]:
        """The multipart form's text fields, in the order declared (CometAPI's: model, prompt, seconds,
        size); a field not given is left out, and so is ``seconds`` for a model with fixed-length clips."""
        spec = MODELS.get(self.model)
        sent = []
        for name in self.form_names():
            value = getattr(self, name)
            if value is None or (name == "seconds" and spec is not None and spec.fixed_seconds):
                continue
            sent.append((name, str(value)))
        return sent

    def fingerprint(self, reference_sha256s: Sequence[str]) -> str:
        """What identifies a request across tries: a cleared task whose request changed must not reuse
        the job of the old one. Every form field counts, as given, and reference images by content, not
        by location. The same text as releases that listed the fields by hand, so their records still match.
        """
        values = [getattr(self, name) for name in self.form_names()]
        canonical = json.dumps([*values, list(reference_sha256s)], ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()

    def _warnings(self, spec: ModelSpec | None) -> tuple[str, ...]:
        """What is sent but may not come out as asked."""
        model, seconds, size, references = self.model, self.seconds, self.size, self.references
        warnings = []
        if spec is None:
            warnings.append(
                f"Model {model!r} is not one this provider knows ({_allowed(MODELS)}); "
                "sending it as is, without checking seconds or size."
            )
        if spec and spec.fixed_seconds and seconds is not None:
            warnings.append(f"Model {model!r} always renders 8-second clips; `seconds` is not sent.")
        if size in EIGHT_SECOND_ONLY_SIZES and (seconds or 4) != 8:
            warnings.append(
                f"Upstream Veo renders {size} only as 8-second clips; asking for "
                f"{seconds or DEFAULT_SECONDS} seconds may fail or be changed by CometAPI."
            )
        if len(references) == 2:
            warnings.append(
                "Two input_reference images (first and last frame): some CometAPI channels use only the "
                "first and drop the last without saying so; nothing in the answer shows which one served it."
            )
        if len(references) == 2 and spec and not spec.fixed_seconds and seconds not in (None, 8):
            warnings.append(
                "First + last frame uses CometAPI's self-developed route, which renders 8-second clips."
            )
        if len(self.prompt) > LONG_PROMPT_CHARS:
            warnings.append(
                f"The prompt is {len(self.prompt)} characters long. Veo reads about 1,000 tokens of prompt "
                "(some 4,000 characters of English); CometAPI publishes no limit, so it is sent as is, but "
                "the model may ignore or refuse the rest."
            )
        return tuple(warnings)


#: Validate a create request against the model table: ``VideoRequest.build``, under its old name.
build_request = VideoRequest.build


def request_fingerprint(request: VideoRequest, reference_sha256s: Sequence[str]) -> str:
    """``request.fingerprint(reference_sha256s)``, under its old name."""
    return request.fingerprint(reference_sha256s)


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
