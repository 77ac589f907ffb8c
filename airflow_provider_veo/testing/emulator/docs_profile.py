"""The "docs" profile: CometAPI's ``/v1/videos`` as ``API.md`` documents it.

Errors come in the documented envelope (type ``comet_api_error``, a request id in the message), jobs
carry ``seconds``, ``size`` and an ``error`` object on failure, and ``video_url`` points at a
separate CDN that refuses credentials.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from airflow_provider_veo.testing.emulator.backend import EmulatedJob
from airflow_provider_veo.testing.emulator.bodies import envelope, gateway_error, status_error
from airflow_provider_veo.testing.emulator.forms import Part
from airflow_provider_veo.testing.emulator.models import InvalidField
from airflow_provider_veo.testing.emulator.responses import (
    Answer,
    ApiRequest,
    Responses,
)
from airflow_provider_veo.testing.emulator.scenario import TERMINAL_STATUSES


def _error(
    status: int,
    code: str,
    message: str,
    *,
    error_type: str = "comet_api_error",
    headers: dict[str, str] | None = None,
) -> Answer:
    return Answer(status, envelope(code, message, error_type=error_type), headers=headers or {})


class DocsResponses(Responses):
    """Answers as ``API.md`` says CometAPI does.

    Where the docs are silent it follows the most plausible real behaviour: an absent ``model`` means
    ``veo3.1`` (the self-developed route's default), unknown fields are ignored, unknown models are
    accepted, ``input_reference`` URLs are accepted without being fetched, and a failed job keeps the
    progress it had reached.
    """

    def invalid_url(self, request: ApiRequest) -> Answer:
        return _error(404, "invalid_url", f"Invalid URL ({request.method} {request.target})")

    def unreadable_body(self, request: ApiRequest, status: int, code: str, message: str) -> Answer:
        return _error(status, code, message)

    def unauthorized(self, request: ApiRequest, *, missing: bool) -> Answer:
        if missing:
            return _error(401, "invalid_api_key", "No API key provided: send Authorization: Bearer <key>")
        return _error(401, "invalid_api_key", "Invalid API key")

    def rate_limited(self, request: ApiRequest, retry_after: float, model: str) -> Answer:
        code, message = status_error(429, model)
        return _error(429, code, message, headers={"Retry-After": format(retry_after, "g")})

    def injected_error(self, request: ApiRequest, status: int, model: str, *, content: bool) -> Answer:
        return _error(status, *status_error(status, model))

    def create_refused(
        self, request: ApiRequest, failure: int | str, model: str, retry_after: float
    ) -> Answer:
        """A status in the envelope; a gateway error's name as that code, with the gateway's words."""
        status = gateway_error(failure).status if isinstance(failure, str) else failure
        if status == 429:
            return self.rate_limited(request, retry_after, model)
        if isinstance(failure, str):
            return _error(status, failure, gateway_error(failure).worded(model))
        return self.injected_error(request, status, model, content=False)

    def screen_form(self, request: ApiRequest, parts: list[Part]) -> Answer | None:
        return None

    def bad_form(self, request: ApiRequest, message: str) -> Answer:
        return _error(400, "invalid_request", message)

    def invalid_field(self, request: ApiRequest, error: InvalidField) -> Answer:
        return _error(400, "invalid_request", str(error))

    def bad_marker(self, request: ApiRequest, message: str) -> Answer:
        return _error(400, "invalid_emulator_marker", message)

    def unknown_task(self, request: ApiRequest, video_id: str, *, content: bool) -> Answer:
        return _error(404, "task_not_exist", f"Task not found: {video_id}")

    def job_answer(self, request: ApiRequest, job: EmulatedJob, *, created: bool) -> Answer:
        """The job object of ``API.md``; a retrieve of a completed job hands out a fresh ``video_url``."""
        spelling = job.scenario.status_spelling or {}
        payload: dict[str, Any] = {
            "id": job.id,
            "task_id": job.id,
            "object": "video",
            "model": job.model,
            "status": spelling.get(job.status, job.status),
            "progress": job.progress,
            "created_at": job.created_at,
            "seconds": job.seconds,
            "size": job.size,
        }
        if job.status == "completed":
            payload["completed_at"] = job.completed_at
            scenario = job.scenario
            if not created and not scenario.missing_video_url and not scenario.content_unavailable:
                token = self.backend.issue_token(job.id)
                payload["video_url"] = self.video_url(job, f"{self.site.cdn_url}/files/{token}.mp4")
        elif job.status in TERMINAL_STATUSES:
            payload["error"] = {"code": job.scenario.error_code, "message": job.scenario.error_message}
        return Answer(200, json.dumps(payload).encode())

    def check_variant(self, request: ApiRequest, query: str) -> Answer | None:
        variant = dict(parse_qsl(query)).get("variant", "video")
        if variant != "video":
            return _error(400, "invalid_request", f"Variant {variant!r} is not available for this model")
        return None

    def content_not_ready(self, request: ApiRequest, job: EmulatedJob) -> Answer:
        return _error(
            400,
            "invalid_request_error",
            f"Video {job.id} is not ready yet (status: {job.status}); "
            "use GET /v1/videos/{video_id} to check its status",
            error_type="invalid_request_error",
        )

    def content_unavailable(self, request: ApiRequest, job: EmulatedJob) -> Answer:
        return _error(502, "bad_response_status_code", "Failed to fetch video content")
