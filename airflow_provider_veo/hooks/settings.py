"""What a ``veo`` connection says about how to call the API, shared by the sync hook and the async client."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from airflow_provider_veo import api
from airflow_provider_veo.api import RetryPolicy, VeoError, VeoInputError, VideoJob

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: Seconds to wait for a TCP (and TLS) connection, whatever the request.
CONNECT_TIMEOUT = 10.0
#: The gateway's id of every answer, which its support asks for.
REQUEST_ID_HEADER = "X-Oneapi-Request-Id"


@dataclass(frozen=True)
class Settings:
    """What a connection says about how to call the API; built once and shared by both clients."""

    base_url: str
    api_key: str
    timeout: float
    create_timeout: float
    retry: RetryPolicy
    #: The connection these came from, named in errors about its key. Not compared: two connections
    #: with the same settings share one session.
    conn_id: str = field(default="", compare=False)
    #: Seconds a whole download may take, and the most bytes it may bring (see :func:`_download_bounds`).
    download_timeout: float = api.DEFAULT_DOWNLOAD_TIMEOUT
    max_download_bytes: int = api.DEFAULT_MAX_DOWNLOAD_BYTES

    @classmethod
    def from_connection(cls, conn: Connection) -> Settings:
        extra = conn.extra_dejson or {}
        try:
            timeout = float(_option(extra, "timeout", api.DEFAULT_REQUEST_TIMEOUT))
            create_timeout = float(_option(extra, "create_timeout", api.DEFAULT_CREATE_TIMEOUT))
            retry = RetryPolicy(
                max_attempts=int(_option(extra, "max_retries", RetryPolicy.max_attempts - 1)) + 1,
                base_delay=float(_option(extra, "retry_base_delay", RetryPolicy.base_delay)),
            )
        except (TypeError, ValueError) as exc:
            raise VeoInputError(
                "extra",
                f"connection {conn.conn_id!r}: timeout, create_timeout, max_retries and retry_base_delay "
                f"must be numbers: {exc}",
            ) from None
        try:
            base_url = api.base_url_from(conn.host, conn.schema, conn.port)
        except VeoInputError as exc:
            raise VeoInputError("host", f"connection {conn.conn_id!r}: {exc.reason}") from None
        return cls(
            base_url=base_url,
            api_key=_api_key(conn),
            timeout=timeout,
            create_timeout=create_timeout,
            retry=retry,
            conn_id=conn.conn_id,
            **_download_bounds(extra),
        )

    def video_source(self, video_id: str, video_url: str | None) -> VideoSource:
        """Where to fetch a job's video from, and whether with the key.

        The key goes only to the API's own ``/content`` route. A ``video_url`` on the API's origin
        (scheme, host and port) is never fetched as given: the job's own ``/content`` is, with the key,
        and any other path there is noted and replaced by it. A ``video_url`` elsewhere (a CDN) is
        fetched without the key, unless its host is a link-local or cloud metadata address (as
        written, or as the name resolves), which is never fetched whatever the API says.
        """
        content = VideoSource(api.content_path(video_id))
        if not video_url:
            return content
        base, target = urlsplit(self.base_url), urlsplit(video_url)
        try:
            same_origin = (
                target.scheme.lower() == base.scheme.lower()
                and target.hostname == base.hostname
                and _port(target) == _port(base)
            )
        except ValueError:  # a port that is not a number
            return VideoSource(
                content.api_path, note=f"video_url {api.shown(video_url)!r} is not a valid URL"
            )
        if same_origin:
            if api.is_content_route(target.path, video_id, base.path):
                return content
            return VideoSource(
                content.api_path,
                note=f"video_url {api.shown(video_url)!r} is on the API's host but is not this video's "
                "/content route, so it is not fetched with the key",
            )
        forbidden = api.forbidden_video_host(video_url) or _resolves_to_metadata(target.hostname or "")
        if forbidden:
            return VideoSource(
                content.api_path,
                note=f"video_url {api.shown(video_url)!r} is refused: {forbidden}",
            )
        return VideoSource(content.api_path, url=video_url)

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}

    def scrub(self, text: str) -> str:
        """``text`` without the key, e.g. a job whose error message echoes it."""
        return text.replace(self.api_key, "***") if self.api_key else text

    def parse_job(self, content: bytes) -> VideoJob:
        """A job from an answer's body, scrubbed of the key before it can reach an event or XCom.

        A body that cannot be read (not JSON, not UTF-8, nested deeper than Python parses, or JSON
        without a job) is a bad answer the next one may mend: a transient error, which a read retries
        within its attempts. It came with a success status, so a create that got it may have made a
        job and is not sent again.
        """
        text = self.scrub(content.decode("utf-8", "replace"))
        try:
            # Strictly UTF-8, as the gateway (Go) always writes: a body that is not was garbled on its
            # way, and read leniently it could pass for a job with another id.
            return VideoJob.from_json(json.loads(self.scrub(content.decode("utf-8"))))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            reason = f"{type(exc).__name__}: {text[:200]!r}"
        except api.VeoAPIError as exc:  # JSON, but no job in it
            reason = str(exc)
        raise api.VeoTransientError(f"CometAPI answered with a body that is not a readable job ({reason})")

    def redact(self, error: VeoError) -> VeoError:
        """Make sure no message carries the key, whatever an upstream server echoed back; an error about
        the key (401) names the connection it came from."""
        if self.api_key and self.api_key in str(error):
            error.args = (str(error).replace(self.api_key, "***"),)
        if isinstance(error, api.VeoAuthenticationError) and self.conn_id:
            error.args = (f"{error} (connection {self.conn_id!r})",)
        return error


@dataclass(frozen=True)
class VideoSource:
    """Where a video is fetched: ``url`` without the key (a CDN), else ``api_path`` with it."""

    api_path: str
    url: str | None = None
    #: Why ``video_url`` was not used, for the log.
    note: str | None = None


#: What a key may hold: printable ASCII without spaces. Anything else cannot be an HTTP header value.
_KEY_CHARS = frozenset(chr(code) for code in range(0x21, 0x7F))


def _api_key(conn: Connection) -> str:
    """The connection's key, without the whitespace a paste leaves around it; refused, without being
    shown, when it is missing or holds characters no header can carry."""
    key = (conn.password or "").strip()
    if not key:
        raise VeoInputError("password", f"connection {conn.conn_id!r} has no API key")
    if not set(key) <= _KEY_CHARS:
        raise VeoInputError(
            "password",
            f"the API key of connection {conn.conn_id!r} holds spaces, line breaks or other characters "
            "an API key cannot have (was more than the key pasted?): set the key alone",
        )
    return key


def _resolves_to_metadata(host: str) -> str | None:
    """Why ``host`` is refused when its name resolves to a link-local or metadata address; ``None``
    when it does not, or does not resolve (the fetch then fails on its own)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = str(info[4][0])
        if api.metadata_address(address):
            return f"{host} resolves to {address}, a link-local or cloud metadata address"
    return None


def _port(url: SplitResult) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme.lower())


def _download_bounds(extra: Mapping[str, Any]) -> dict[str, Any]:
    """``download_timeout`` (seconds a whole download may take) and ``max_download_bytes`` (the largest
    video accepted) from the extra, each a positive number; absent or empty, the defaults."""
    bounds: dict[str, Any] = {}
    for name, kind, default in (
        ("download_timeout", float, api.DEFAULT_DOWNLOAD_TIMEOUT),
        ("max_download_bytes", int, api.DEFAULT_MAX_DOWNLOAD_BYTES),
    ):
        value = _option(extra, name, default)
        try:
            bounds[name] = number = kind(value)
        except (TypeError, ValueError, OverflowError):
            number = 0
        if isinstance(value, bool) or not 0 < number < math.inf:
            wanted = f"a positive {kind.__name__}"
            raise VeoInputError(name, f"the connection's {name} must be {wanted}, got {value!r}")
    return bounds


def _option(extra: Mapping[str, Any], name: str, default: float) -> Any:
    """An extra option, or its default when absent or left empty (Airflow 3.1's form stores null)."""
    value = extra.get(name)
    return default if value is None or value == "" else value
