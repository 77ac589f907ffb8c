"""Request bodies as the emulator reads them: whole bodies, then forms through python-multipart.

python-multipart is what Starlette and FastAPI parse forms with (Airflow's API server installs it),
so the emulator reads a create body as a real server would, not with a parser of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from io import BufferedIOBase
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header


@dataclass
class Part:
    """One part of a multipart body; ``filename`` is ``None`` for a plain field."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Form:
    """A create body as read: its fields, and its parts when it was multipart."""

    #: The text fields, in order: the urlencoded pairs, or the multipart parts without a filename.
    fields: list[tuple[str, str]] = field(default_factory=list)
    #: Every part, in order, when the body was multipart; ``None`` for any other body.
    parts: list[Part] | None = None
    #: Why a multipart body could not be read, if it could not.
    error: str | None = None


class BodyError(Exception):
    """A request body that cannot be read: ``status`` and ``code`` say why, the profile words it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def read_body(headers: Message, stream: BufferedIOBase, limit: int) -> bytes:
    """The whole request body, by its Content-Length or its chunked framing; over ``limit`` bytes, a 413."""
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        return _read_chunked(stream, limit)
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise BodyError(400, "invalid_request", "Invalid Content-Length") from None
    if length > limit:
        raise BodyError(413, "request_too_large", f"The request body is over {limit} bytes")
    return stream.read(length)


def _read_chunked(stream: BufferedIOBase, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            size = int(stream.readline(1024).split(b";")[0], 16)
        except ValueError:
            raise BodyError(400, "invalid_request", "Malformed chunked body") from None
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # Trailers.
            return b"".join(chunks)
        total += size
        if total > limit:
            raise BodyError(413, "request_too_large", f"The request body is over {limit} bytes")
        chunks.append(stream.read(size))
        stream.readline(1024)


def read_form(content_type: str, body: bytes) -> Form:
    """Read a create body by its Content-Type; a body of another type yields an empty form."""
    media_type, options = parse_options_header(content_type)
    if media_type == b"application/x-www-form-urlencoded":
        return Form(fields=parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if media_type != b"multipart/form-data":
        return Form()
    boundary = options.get(b"boundary")
    if not boundary:
        return Form(error="Malformed multipart body: the multipart Content-Type has no boundary")
    try:
        parts = _parse_multipart(boundary, body)
    except (FormParserError, ValueError) as error:
        return Form(error=f"Malformed multipart body: {error}")
    fields = [(p.name, p.data.decode("utf-8", "replace")) for p in parts if p.filename is None]
    return Form(fields=fields, parts=parts)


def _parse_multipart(boundary: bytes, body: bytes) -> list[Part]:
    """The parts of a whole multipart body; raises when it is malformed or not terminated."""
    parts: list[Part] = []
    headers: dict[str, str] = {}
    header_name: list[bytes] = []
    header_value: list[bytes] = []
    data: list[bytes] = []
    ended = False

    def on_header_field(buffer: bytes, start: int, end: int) -> None:
        header_name.append(buffer[start:end])

    def on_header_value(buffer: bytes, start: int, end: int) -> None:
        header_value.append(buffer[start:end])

    def on_header_end() -> None:
        name = b"".join(header_name).decode("latin-1").strip().lower()
        headers[name] = b"".join(header_value).decode("utf-8", "replace").strip()
        header_name.clear()
        header_value.clear()

    def on_part_data(buffer: bytes, start: int, end: int) -> None:
        data.append(buffer[start:end])

    def on_part_end() -> None:
        _, disposition = parse_options_header(headers.get("content-disposition", ""))
        if b"name" not in disposition:
            raise ValueError("a multipart part has no name")
        filename = disposition.get(b"filename")
        media_type, _ = parse_options_header(headers.get("content-type", ""))
        parts.append(
            Part(
                name=disposition[b"name"].decode("utf-8", "replace"),
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=media_type.decode("latin-1"),
                data=b"".join(data),
            )
        )
        headers.clear()
        data.clear()

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    parser.write(body)
    parser.finalize()
    if not ended:
        raise ValueError("the multipart body is not terminated")
    return parts
