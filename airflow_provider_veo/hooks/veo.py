"""The one place that speaks HTTP to CometAPI: create, retrieve and download Veo videos."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from airflow.sdk import BaseHook
from urllib3.exceptions import NewConnectionError

from airflow_provider_veo import UI_FIELD_BEHAVIOUR, api, connection_form_widgets
from airflow_provider_veo.api import (
    JobState,
    StoredVideo,
    VeoDownloadError,
    VeoError,
    VeoInputError,
    VeoTransientError,
    VeoVideoUnavailableError,
    VideoJob,
    VideoRequest,
)
from airflow_provider_veo.hooks.download import Bounds as _Bounds
from airflow_provider_veo.hooks.download import Written as _Written
from airflow_provider_veo.hooks.download import receive, source_of
from airflow_provider_veo.hooks.settings import CONNECT_TIMEOUT as _CONNECT_TIMEOUT
from airflow_provider_veo.hooks.settings import REQUEST_ID_HEADER
from airflow_provider_veo.hooks.settings import Settings as _Settings

if TYPE_CHECKING:
    from airflow_provider_veo.destinations import Destination
    from airflow_provider_veo.hooks.async_client import (
        MAX_REQUESTS_IN_FLIGHT,
        MIN_REQUESTS_IN_FLIGHT,
        InFlightLimit,
        VeoAsyncClient,
    )

__all__ = [
    "DOWNLOAD_ATTEMPTS",
    "MAX_REQUESTS_IN_FLIGHT",
    "MIN_REQUESTS_IN_FLIGHT",
    "REQUEST_ID_HEADER",
    "InFlightLimit",
    "VeoAsyncClient",
    "VeoHook",
]

_T = TypeVar("_T")

#: Attempts at fetching the finished video; each failed one reads the job again for a fresh URL.
DOWNLOAD_ATTEMPTS = 3
_EXPIRED_URL_STATUSES = frozenset({401, 403, 404, 410})


# How requests says "no answer"; only a refused or timed-out connect proves nothing arrived (the async
# client's twin is in async_client.py).


#: requests' errors for a request it refused to build: nothing was sent, and sending again fails alike.
_UNSENDABLE = (
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)


def _requests_failure(exc: requests.RequestException, url: str) -> VeoError:
    if isinstance(exc, _UNSENDABLE):  # its text may quote the header, key included: not shown
        field = "password" if isinstance(exc, requests.exceptions.InvalidHeader) else "host"
        return VeoInputError(
            field, f"the request to {url} could not be built ({type(exc).__name__}), so nothing was sent"
        )
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    never_arrived = isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)
    return api.connection_error(
        f"No answer from {url} ({type(exc).__name__}: {exc}). Check the connection's Base URL (`host`).",
        job_may_exist=not never_arrived,
    )


def _error_from(response: requests.Response) -> VeoError:
    """The typed error of an unsuccessful answer, with its ``Retry-After`` and request id."""
    return api.error_from_response(
        response.status_code,
        response.content,
        response.headers.get("Retry-After"),
        request_id=response.headers.get(REQUEST_ID_HEADER),
    )


def _keep(response: requests.Response) -> requests.Response:
    """The answer itself, for calls that stream it."""
    return response


class VeoHook(BaseHook):
    """Talk to CometAPI's Veo video API with the key of a ``veo`` connection.

    :param veo_conn_id: connection whose ``host`` is the base URL (empty for CometAPI's) and whose
        ``password`` is the API key. Its extra may set ``timeout`` (seconds per request),
        ``max_retries`` and ``retry_base_delay``.
    """

    conn_name_attr = "veo_conn_id"
    default_conn_name = "veo_default"
    conn_type = "veo"
    hook_name = "CometAPI Veo"

    def __init__(self, veo_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.veo_conn_id = veo_conn_id
        #: Create requests (POSTs, each of which may start a paid job) this hook has sent.
        self.create_requests_sent = 0

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow 3.1; 3.2+ reads the same from the provider info."""
        return UI_FIELD_BEHAVIOUR

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra options' fields for Airflow 3.1's form; 3.2+ reads ``conn-fields`` instead."""
        return connection_form_widgets()

    # ---------------------------------------------------------------------------------------
    # Settings
    # ---------------------------------------------------------------------------------------

    @functools.cached_property
    def _settings(self) -> _Settings:
        settings = _Settings.from_connection(self.get_connection(self.veo_conn_id))
        _mask(settings.api_key)
        return settings

    async def _asettings(self) -> _Settings:
        settings = _Settings.from_connection(await self.aget_connection(self.veo_conn_id))
        await _amask(settings.api_key)
        return settings

    @functools.cached_property
    def _session(self) -> requests.Session:
        return requests.Session()

    # ---------------------------------------------------------------------------------------
    # Sync API
    # ---------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> requests.Response:
        """One API call driven by :func:`api.request_flow`; returns only a successful answer."""
        return self._request(method, path, _keep, stream=stream, **kwargs)

    def _request(
        self,
        method: str,
        path: str,
        read: Callable[[requests.Response], _T],
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> _T:
        """One API call driven by :func:`api.request_flow`, ending in ``read`` of a successful answer.

        ``read`` raising :class:`VeoTransientError` (a body that cannot be parsed) counts as a failed
        attempt, as an error status does; the flow decides whether to try again.
        """
        settings = self._settings
        url = settings.base_url + path
        read_timeout = settings.create_timeout if method == "POST" else settings.timeout
        flow = api.request_flow(settings.retry, method)
        step = next(flow)
        while True:
            if isinstance(step, api.Sleep):
                self.log.warning(
                    "%s %s failed (%s); attempt %d in %.1f s",
                    method,
                    api.shown(path),
                    step.error,
                    step.next_attempt,
                    step.seconds,
                )
                time.sleep(step.seconds)
                step = next(flow)
                continue
            if method == "POST":
                self.create_requests_sent += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=settings.auth_headers,
                    timeout=(_CONNECT_TIMEOUT, read_timeout),
                    stream=stream,
                    **kwargs,
                )
            except requests.RequestException as exc:
                error: VeoError = _requests_failure(exc, url)
            else:
                if response.ok:
                    try:
                        result = read(response)
                    except VeoTransientError as exc:
                        response.close()
                        error = exc
                    else:
                        flow.close()
                        return result
                else:
                    error = _error_from(response)
                    response.close()
            step = flow.send(settings.redact(error))  # redacted before it is logged, not only raised

    def _job(self, response: requests.Response) -> VideoJob:
        return self._settings.parse_job(response.content)

    def create_video(self, prompt: str, **arguments: Any) -> VideoJob:
        """Validate and submit one job (a paid request, sent at most once unless provably not received).

        ``arguments`` are the rest of :class:`~airflow_provider_veo.api.VideoRequest`'s, as the operators
        take them: ``model``, ``seconds``, ``size``, ``input_reference`` (paths, ``os.PathLike``, URIs, URLs).
        """
        return self.submit(VideoRequest.build(prompt=prompt, **arguments))

    def submit(self, request: VideoRequest, images: list[tuple[str, bytes, str]] | None = None) -> VideoJob:
        """Submit an already validated request as ``multipart/form-data``, reference images included.

        ``images`` are the references as :meth:`load_references` read them, when the caller already
        did (to fingerprint the request); otherwise they are read here, before anything is sent.
        """
        for warning in request.warnings:
            self.log.warning(warning)
        retired = api.DEPRECATED_MODELS.get(request.model)
        if retired:
            self.log.warning("Model %r is deprecated: %s", request.model, retired)
        parts: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = [
            (name, (None, value, None)) for name, value in request.form_fields()
        ]
        images = self.load_references(request) if images is None else images
        parts += [("input_reference", image) for image in images]
        sent_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        try:
            job = self._request("POST", api.VIDEOS_PATH, self._job, files=parts)
        except api.VeoSubmissionUncertainError as exc:
            exc.args = (
                f"{exc} Look in the CometAPI console's task log for a {request.model} video created at "
                f"about {sent_at} with the prompt {api.excerpt(request.prompt)!r}; download it by its id "
                "with VeoDownloadVideoOperator, or clear this task to pay for a new one.",
            )
            raise
        except api.VeoModelUnavailableError as exc:
            advice = f" ({retired})" if retired else ""
            exc.args = (f"Model {request.model!r} is unavailable{advice}. {exc}",)
            raise
        self.log.info(
            "Submitted video %s (status %s): model %s, %s s, size %s, prompt %r%s",
            api.shown(job.video_id),
            api.shown(job.status),
            request.model,
            request.seconds or "default",
            request.size or "default",
            api.prompt_fields(request.prompt)[0],
            f", input_reference {list(request.references)}" if request.references else "",
        )
        return job

    def load_references(self, request: VideoRequest) -> list[tuple[str, bytes, str]]:
        """Read every reference image and check it, before anything is sent to the API."""
        images = []
        for position, location in enumerate(request.references):
            content = self._read_reference(position, location)
            content_type = api.check_reference_image(position, location, content)
            name = Path(location.split("?", 1)[0].rstrip("/")).name or f"frame{position}"
            # A file name read with the wrong encoding (a lone surrogate) is sent with a stand-in character.
            name = name.encode("utf-8", "replace").decode("utf-8")
            images.append((name, content, content_type))
        return images

    def _read_reference(self, position: int, location: str) -> bytes:
        limit = api.MAX_REFERENCE_BYTES + 1
        kind = api.reference_kind(location)
        try:
            if kind == "url":
                # A public image: fetched without the API's credentials.
                with requests.get(location, timeout=(_CONNECT_TIMEOUT, 60), stream=True) as response:
                    if not response.ok:
                        raise VeoInputError(
                            "input_reference",
                            f"item {position} ({location}) could not be fetched: HTTP {response.status_code}",
                        )
                    content: bytes = response.raw.read(limit, decode_content=True)
                    return content
            if kind == "uri":
                from airflow_provider_veo.destinations import parse_destination

                return parse_destination(location).read_bytes(limit, field="input_reference")
            with Path(location).expanduser().open("rb") as source:
                return source.read(limit)
        except VeoInputError:
            raise
        except (OSError, ValueError, requests.RequestException) as exc:  # ValueError: an unsendable URL
            raise VeoInputError(
                "input_reference", f"item {position} ({location}) cannot be read: {exc}"
            ) from exc

    def get_video(self, video_id: str) -> VideoJob:
        """Read a job's status (GET, retried on transient errors)."""
        return self._request("GET", api.video_path(video_id), self._job)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL answers and accepts the key, by reading a job id that cannot exist."""
        try:
            self.get_video("airflow-connection-test")
        except api.VeoModelAccessError as exc:
            # The gateway checked the key and only its model list was in the way of this made-up id.
            return True, (
                "Connection to CometAPI works: the API key was accepted. It is limited to certain "
                f"models; make sure the ones your DAGs use are among them ({exc})."
            )
        except (api.VeoAuthenticationError, api.VeoPermissionError, api.VeoInsufficientCreditError) as exc:
            return False, str(exc)
        except api.VeoBadRequestError:
            return True, "Connection to CometAPI works: the API key was accepted."
        except VeoError as exc:
            return False, str(exc)
        return True, "Connection to CometAPI works."

    # ---------------------------------------------------------------------------------------
    # Download
    # ---------------------------------------------------------------------------------------

    def download_video(
        self,
        video_id: str,
        destination: str | os.PathLike[str] | Destination,
        *,
        job: VideoJob | None = None,
        request: VideoRequest | None = None,
    ) -> StoredVideo:
        """Stream a completed job's MP4 to ``destination`` and describe what was written.

        The file appears at the destination only once its size matches ``Content-Length`` and its
        top-level boxes tile it exactly, with ``ftyp``, ``moov`` and ``mdat``: a body cut short is
        never published. A failed ``video_url`` is retried with a fresh one from the job, then with
        ``/content``, all within the connection's ``download_timeout``; a video over its
        ``max_download_bytes`` is refused. ``request``, when given, is what was asked, checked against
        what was rendered. A store that refuses the upload raises
        :class:`~airflow_provider_veo.destinations.VeoStorageError`.
        """
        from airflow_provider_veo.destinations import parse_destination

        target = parse_destination(destination).file_for(video_id)
        bounds = _Bounds.starting_now(self._settings)
        job = job or self.get_video(video_id)
        failed_urls: set[str] = set()
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            if job.state is not JobState.SUCCEEDED:
                raise VeoDownloadError(
                    f"Video {api.shown(video_id)} is not completed (status {job.status!r})"
                )
            url = job.video_url if job.video_url and job.video_url not in failed_urls else None
            try:
                written = self._stream_to(target, video_id, url, bounds)
            except VeoDownloadError as exc:
                if attempt == DOWNLOAD_ATTEMPTS or bounds.passed or isinstance(exc, VeoVideoUnavailableError):
                    raise  # the API will not deliver it, or the time is up: another read changes nothing
                self.log.warning(
                    "Download of %s failed (%s); reading the job again", api.shown(video_id), exc
                )
                if url:
                    failed_urls.add(url)
                job = self.get_video(video_id)
                continue
            prompt, prompt_sha256 = api.prompt_fields(request.prompt) if request else (None, None)
            model, upstream_model = api.model_names(request.model if request else None, job.model)
            stored = StoredVideo(
                video_id=video_id,
                uri=written.uri,
                asset_uri=target.canonical_uri,
                bytes=written.size,
                sha256=written.sha256,
                content_type=written.content_type,
                model=model,
                upstream_model=upstream_model,
                seconds=job.seconds or (str(request.seconds) if request and request.seconds else None),
                size=job.size or (request.size if request else None),
                duration_seconds=written.mp4.duration_seconds,
                width=written.mp4.width,
                height=written.mp4.height,
                prompt=prompt,
                prompt_sha256=prompt_sha256,
                input_reference=list(request.references) if request else [],
                usage=None,
            )
            self.log.info(
                "Wrote %s (%d bytes, sha256 %s, %s s, %sx%s)",
                stored["uri"],
                stored["bytes"],
                stored["sha256"],
                stored["duration_seconds"],
                stored["width"],
                stored["height"],
            )
            self._check_rendered(stored, request, job)
            return stored
        raise AssertionError("unreachable")

    def _check_rendered(self, stored: StoredVideo, request: VideoRequest | None, job: VideoJob) -> None:
        """Warn when the MP4 differs from what was asked: channels may render another length or size."""
        seconds = request.seconds if request else job.seconds
        size = request.size if request else job.size
        video_id, duration = stored["video_id"], stored["duration_seconds"]
        if seconds and duration is not None and abs(float(seconds) - duration) > 0.5:
            self.log.warning(
                "Video %s lasts %.2f s, but %s s were asked for", api.shown(video_id), duration, seconds
            )
        if size in api.VIDEO_SIZES and stored["width"] and stored["height"]:
            rendered = f"{stored['width']}x{stored['height']}"
            if rendered != size:
                self.log.warning("Video %s is %s, but %s was asked for", api.shown(video_id), rendered, size)

    def _open_video(self, video_id: str, video_url: str | None) -> requests.Response:
        """The streaming answer for a job's video: ``video_url`` on another host without the key (a CDN),
        else the job's ``/content`` with it (see :meth:`Settings.video_source` for what is refused)."""
        source = self._settings.video_source(video_id, video_url)
        if source.note:
            self.log.warning("Video %s: %s; fetching its /content instead", api.shown(video_id), source.note)
        where = source_of(source.url or self._settings.base_url + source.api_path)
        self.log.info("Downloading video %s from %s", api.shown(video_id), where)
        if source.url:
            try:
                response = self._session.get(
                    source.url, stream=True, timeout=(_CONNECT_TIMEOUT, self._settings.timeout)
                )
            except requests.RequestException as exc:
                raise VeoDownloadError(f"video_url could not be fetched: {type(exc).__name__}") from exc
            if not response.ok:
                response.close()
                expired = " (expired?)" if response.status_code in _EXPIRED_URL_STATUSES else ""
                raise VeoDownloadError(f"video_url answered HTTP {response.status_code}{expired}")
            return response
        try:
            return self._call("GET", source.api_path, stream=True)
        except VeoTransientError as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise VeoVideoUnavailableError(
                    f"CometAPI says video {api.shown(video_id)} is completed but cannot deliver it ({exc}). "
                    "This happens when Google blocks a finished clip, which is still billed: ask "
                    "CometAPI's support about this video id and request id."
                ) from exc
            raise VeoDownloadError(str(exc)) from exc
        except api.VeoPermissionError as exc:
            if exc.status_code == 403 and "request blocked" in str(exc).lower():
                raise VeoVideoUnavailableError(
                    f"CometAPI refused to deliver video {api.shown(video_id)}: {exc}"
                ) from exc
            raise

    def _stream_to(
        self, target: Destination, video_id: str, video_url: str | None, bounds: _Bounds
    ) -> _Written:
        """Stream the video into ``target`` within ``bounds``; publish it only once it is verified whole."""
        return receive(self._open_video(video_id, video_url), target, bounds)

    # ---------------------------------------------------------------------------------------
    # Async API (for the trigger)
    # ---------------------------------------------------------------------------------------

    def async_client(
        self, *, polls_every: float | None = None
    ) -> AbstractAsyncContextManager[VeoAsyncClient]:
        """``async with hook.async_client() as client``: an async client for the event loop. The
        connection is read without blocking the loop, once for all the triggers that start within
        :data:`~airflow_provider_veo.hooks.async_client.SETTINGS_TTL`.

        The ``aiohttp.ClientSession`` underneath is shared by every user of the same connection
        settings in this event loop, and so is its limit on requests in flight, which grows with the
        polls per second its users announce (``polls_every``: this user's seconds between polls) and
        with the API's latency (see :class:`~airflow_provider_veo.hooks.async_client.InFlightLimit`).
        """
        from airflow_provider_veo.hooks import async_client

        demand = 1.0 / polls_every if polls_every else 0.0
        return async_client.SharedClient(self.veo_conn_id, self._asettings, self._warn, demand)

    def _warn(self, msg: str, *args: object) -> None:
        """The async client's retry warnings: the hook's logger is made only if one is needed."""
        self.log.warning(msg, *args)


_ASYNC_NAMES = frozenset(
    {"MAX_REQUESTS_IN_FLIGHT", "MIN_REQUESTS_IN_FLIGHT", "InFlightLimit", "VeoAsyncClient"}
)


def __getattr__(name: str) -> Any:
    """The async client's names, from :mod:`~airflow_provider_veo.hooks.async_client` on first use:
    a worker that only creates and downloads never imports aiohttp."""
    if name in _ASYNC_NAMES:
        from airflow_provider_veo.hooks import async_client

        return getattr(async_client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _mask(secret: str) -> None:
    """Register the key with Airflow's secret masker, so no log line can show it."""
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


async def _amask(secret: str) -> None:
    """The event-loop twin of :func:`_mask`; a sync send to the supervisor would block the triggerer."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.2: the triggerer already masks connection passwords it fetched.
        return
    await amask_secret(secret)
