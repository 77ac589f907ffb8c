"""Where the API is and how it is reached (base URL, paths, timeouts), and the names videos are saved under.

Job ids come from the server, so escaping them into URL paths and file names is done here, once.
"""

from __future__ import annotations

import hashlib
import re

from airflow_provider_veo.api.errors import VeoAPIError, VeoInputError

DEFAULT_BASE_URL = "https://api.cometapi.com"
VIDEOS_PATH = "/v1/videos"

#: Downloads are streamed in chunks of this size, so memory stays flat whatever the video weighs.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024

DEFAULT_REQUEST_TIMEOUT = 60.0
#: A create may take minutes: the gateway has no relay timeout and tries other channels on failure,
#: and giving up early leaves a job that may exist.
DEFAULT_CREATE_TIMEOUT = 300.0

_URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
_SCHEME_PATTERN = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


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


def reference_kind(location: str) -> str:
    """``"url"`` for http(s), ``"uri"`` for another object-storage scheme, ``"path"`` otherwise."""
    if _URL_PATTERN.match(location):
        return "url"
    if _SCHEME_PATTERN.match(location):
        return "uri"
    return "path"


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
