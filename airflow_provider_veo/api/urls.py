"""Where the API is and how it is reached (base URL, paths, timeouts), and the names videos are saved under.

Job ids come from the server, so escaping them into URL paths and file names is done here, once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from urllib.parse import unquote, urlsplit

from airflow_provider_veo.api.errors import VeoAPIError, VeoInputError

DEFAULT_BASE_URL = "https://api.cometapi.com"
VIDEOS_PATH = "/v1/videos"

#: Downloads are streamed in chunks of this size, so memory stays flat whatever the video weighs.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024

DEFAULT_REQUEST_TIMEOUT = 60.0
#: A create may take minutes: the gateway has no relay timeout and tries other channels on failure,
#: and giving up early leaves a job that may exist.
DEFAULT_CREATE_TIMEOUT = 300.0
#: A download ends within this many seconds, whatever the pace of the server: a CDN trickling bytes
#: fails it instead of holding the task for hours. 30 minutes is a 4 GiB file at 2.3 MiB/s.
DEFAULT_DOWNLOAD_TIMEOUT = 30 * 60.0
#: The largest video a download accepts: a Veo clip weighs 5-100 MB, so 4 GiB only stops a server
#: that would fill the disk.
DEFAULT_MAX_DOWNLOAD_BYTES = 4 * 1024**3

_URL_PATTERN = re.compile(r"^https?://", re.IGNORECASE)
_SCHEME_PATTERN = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def base_url_from(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """The API's base URL from a connection's fields: scheme defaults to https, a trailing /v1 is dropped.

    ``port`` goes after the host name, before any path prefix (``https://h/prefix`` with port 8443 is
    ``https://h:8443/prefix``), unless the host already names one. A user name or password in the host
    is refused: ``requests`` would send it as Basic auth in place of the key.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if not _SCHEME_PATTERN.match(host):
        host = f"{(schema or 'https').strip()}://{host}"
    if not _URL_PATTERN.match(host):
        raise VeoInputError("host", f"the base URL must start with http:// or https://, got {host!r}")
    parts = urlsplit(host)
    if "@" in parts.netloc:
        raise VeoInputError(
            "host",
            "the base URL holds a user name or password (`user:...@host`), which would be sent in place "
            "of the API key: give only the address, and the key in the password field",
        )
    try:
        named_port = parts.port
    except ValueError:
        raise VeoInputError("host", f"the base URL's port is not a number: {host!r}") from None
    netloc = parts.netloc
    if port and named_port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if path.lower().endswith("/v1"):
        path = path[:-3].rstrip("/")
    return f"{parts.scheme.lower()}://{netloc}{path}"


def reference_kind(location: str) -> str:
    """``"url"`` for http(s), ``"uri"`` for another object-storage scheme, ``"path"`` otherwise."""
    if _URL_PATTERN.match(location):
        return "url"
    if _SCHEME_PATTERN.match(location):
        return "uri"
    return "path"


#: Host names of cloud metadata services, whatever they resolve to.
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
#: Addresses of metadata services outside the link-local ranges (AWS's IPv6 one, Alibaba Cloud's).
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)


def metadata_address(address: str) -> bool:
    """Whether ``address`` (an IP, as text) is link-local (169.254.0.0/16, fe80::/10) or a known
    cloud metadata service's, including IPv4 written in an IPv6 form."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_link_local or ip in _METADATA_ADDRESSES


def forbidden_video_host(url: str) -> str | None:
    """Why a ``video_url`` must never be fetched, or ``None``. Only what the URL itself says: a
    link-local or metadata address written as an IP (in any notation the resolver accepts, such as
    ``2852039166``), or a metadata service's name. Names are resolved by the caller."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        return "it names no host"
    if host in _METADATA_NAMES:
        return f"{host} is a cloud metadata service"
    if metadata_address(host):
        return f"{host} is a link-local or cloud metadata address"
    try:  # the resolver's legacy IPv4 forms: 0xa9.0xfe.0xa9.0xfe, 2852039166, 169.254.43518
        legacy = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None
    if metadata_address(legacy):
        return f"{host} ({legacy}) is a link-local or cloud metadata address"
    return None


def content_path(video_id: str) -> str:
    """The gateway's route that streams a job's video (with the key)."""
    return video_path(video_id) + "/content"


def is_content_route(url_path: str, video_id: str, prefix: str) -> bool:
    """Whether ``url_path`` (a URL's path, still escaped) is ``{prefix}/v1/videos/{video_id}/content``."""
    return unquote(url_path) == unquote(prefix.rstrip("/") + content_path(video_id))


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
