"""What a ``veo`` connection says about how to call the API, shared by the sync hook and the async client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
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

    @classmethod
    def from_connection(cls, conn: Connection) -> Settings:
        extra = conn.extra_dejson or {}
        if not conn.password:
            raise VeoInputError("password", f"connection {conn.conn_id!r} has no API key")
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
                f"timeout, create_timeout, max_retries and retry_base_delay must be numbers: {exc}",
            ) from None
        return cls(
            base_url=api.base_url_from(conn.host, conn.schema, conn.port),
            api_key=conn.password,
            timeout=timeout,
            create_timeout=create_timeout,
            retry=retry,
        )

    def api_path(self, url: str) -> str | None:
        """The path (and query) of ``url`` when it is the API's own, e.g. the gateway's ``/content``
        proxy as ``video_url``; ``None`` for any other host, which must never see the key."""
        base, target = urlsplit(self.base_url), urlsplit(url)
        same_origin = (
            target.scheme.lower() == base.scheme.lower()
            and target.hostname == base.hostname
            and _port(target) == _port(base)
        )
        if not same_origin or not target.path.startswith(base.path.rstrip("/") + "/"):
            return None
        path = target.path[len(base.path.rstrip("/")) :]
        return f"{path}?{target.query}" if target.query else path

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}

    def scrub(self, text: str) -> str:
        """``text`` without the key, e.g. a job whose error message echoes it."""
        return text.replace(self.api_key, "***") if self.api_key else text

    def parse_job(self, content: bytes) -> VideoJob:
        """A job from an answer's body, scrubbed of the key before it can reach an event or XCom."""
        text = self.scrub(content.decode("utf-8", "replace"))
        try:
            return VideoJob.from_json(json.loads(text))
        except ValueError as exc:
            raise api.VeoAPIError(f"CometAPI answered with invalid JSON: {text[:200]!r}") from exc

    def redact(self, error: VeoError) -> VeoError:
        """Make sure no message carries the key, whatever an upstream server echoed back."""
        if self.api_key and self.api_key in str(error):
            error.args = (str(error).replace(self.api_key, "***"),)
        return error


def _port(url: SplitResult) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme.lower())


def _option(extra: Mapping[str, Any], name: str, default: float) -> Any:
    """An extra option, or its default when absent or left empty (Airflow 3.1's form stores null)."""
    value = extra.get(name)
    return default if value is None or value == "" else value
