"""The "new-api" profile: the server CometAPI really runs, a fork of the open-source gateway new-api.

Where ``API.md`` and the gateway differ, this profile answers as the gateway does (``GATEWAY.md``
has the source paths): three error shapes and an ``X-Oneapi-Request-Id`` header on every answer,
``400 task_not_exist`` for an unknown id, credit errors as 403, a 429 without ``Retry-After``, the
status ``unknown`` before the gateway has looked at a job, failed jobs without a reason, an absent
``seconds`` billed as Veo's 8, and ``video_url`` pointing at the gateway's own ``/content``, which
needs the key and streams the video chunked, without a Content-Length.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_veo.testing.emulator.backend import EmulatedJob
from airflow_provider_veo.testing.emulator.bodies import (
    GatewayError,
    gateway_envelope,
    gateway_error,
    gateway_flat,
    gateway_proxy_error,
    status_phrase,
)
from airflow_provider_veo.testing.emulator.forms import Part
from airflow_provider_veo.testing.emulator.models import UPSTREAM_MODELS, InvalidField
from airflow_provider_veo.testing.emulator.responses import Answer, ApiRequest, Reply, Responses, VideoAnswer

#: The header new-api puts on every answer; its value also ends the envelope's message.
REQUEST_ID_HEADER = "X-Oneapi-Request-Id"
#: The progress values new-api reports for an unfinished Veo job (it has no finer measure).
_PROGRESS_STEPS = (50, 30, 20, 10, 0)
#: The internal status ``/content`` names when it refuses an unfinished job.
_INTERNAL_STATUS = {
    "unknown": "NOT_START",
    "queued": "QUEUED",
    "in_progress": "IN_PROGRESS",
    "failed": "FAILURE",
}
#: The form fields new-api reads into strings: sent twice, they become an array it cannot read.
_STRING_FIELDS = frozenset({"model", "prompt", "seconds", "size", "input_reference"})


def _flat(status: int, code: str, message: str) -> Answer:
    return Answer(status, gateway_flat(code, message))


def _proxy_error(status: int, message: str) -> Answer:
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    return Answer(status, gateway_proxy_error(message, error_type))


class NewApiResponses(Responses):
    """Answers as new-api does in front of a Gemini/Vertex Veo channel, with CometAPI's ``video_url``."""

    default_seconds = "8"
    chunked_content = True

    def finish(self, request: ApiRequest, reply: Reply) -> Reply:
        if isinstance(reply, (Answer, VideoAnswer)):
            reply.headers[REQUEST_ID_HEADER] = request.id
        return reply

    def _gateway(self, request: ApiRequest, error: GatewayError, model: str) -> Answer:
        if error.shape == "envelope":
            return Answer(error.status, gateway_envelope(error.code, error.worded(model), request.id))
        return _flat(error.status, error.code, error.worded(model))

    def invalid_url(self, request: ApiRequest) -> Answer:
        message = f"Invalid URL ({request.method} {urlsplit(request.target).path})"
        error = {"message": message, "type": "invalid_request_error", "param": "", "code": ""}
        return Answer(404, json.dumps({"error": error}).encode())

    def unreadable_body(self, request: ApiRequest, status: int, code: str, message: str) -> Answer:
        return _flat(status, "invalid_request", message)

    def unauthorized(self, request: ApiRequest, *, missing: bool) -> Answer:
        return self._gateway(request, gateway_error("invalid_token"), "")

    def rate_limited(self, request: ApiRequest, retry_after: float, model: str) -> Answer:
        return self._gateway(request, gateway_error("saturated"), model)

    def injected_error(self, request: ApiRequest, status: int, model: str, *, content: bool) -> Answer:
        if content:
            return _proxy_error(
                status, "Failed to fetch video content" if status >= 500 else status_phrase(status)
            )
        return self._gateway(request, gateway_error(status), model)

    def create_refused(
        self, request: ApiRequest, failure: int | str, model: str, retry_after: float
    ) -> Answer:
        return self._gateway(request, gateway_error(failure), model)

    def screen_form(self, request: ApiRequest, parts: list[Part]) -> Answer | None:
        names = [part.name for part in parts if part.filename is None and part.name in _STRING_FIELDS]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if not repeated:
            return None
        message = (
            f"json: cannot unmarshal array into Go struct field TaskSubmitReq.{repeated[0]} of type string"
        )
        return _flat(400, "invalid_json", message)

    def bad_form(self, request: ApiRequest, message: str) -> Answer:
        return _flat(400, "invalid_request", message)

    def invalid_field(self, request: ApiRequest, error: InvalidField) -> Answer:
        """A missing prompt is the gateway's own check; anything else is Google's 400, relayed."""
        if error.field == "prompt":
            return _flat(400, "invalid_request", str(error))
        google = {"error": {"code": 400, "message": str(error), "status": "INVALID_ARGUMENT"}}
        return _flat(400, "fail_to_fetch_task", json.dumps(google))

    def bad_marker(self, request: ApiRequest, message: str) -> Answer:
        return _flat(400, "invalid_emulator_marker", message)

    def unknown_task(self, request: ApiRequest, video_id: str, *, content: bool) -> Answer:
        if content:
            return _proxy_error(404, "Task not found")
        return _flat(400, "task_not_exist", "task_not_exist")

    @staticmethod
    def _status(job: EmulatedJob) -> str:
        """``unknown`` until the gateway has looked at the job (the create answer and the first
        retrieve), ``failed`` for every failure, else the job's own status."""
        if job.status in ("failed", "error"):
            return "failed"
        if job.status == "queued" and job.polls <= 1:
            return "unknown"
        return job.status

    @staticmethod
    def _progress(job: EmulatedJob) -> int:
        if job.status in ("completed", "failed", "error"):
            return 100
        return next(step for step in _PROGRESS_STEPS if step <= job.progress)

    def job_answer(self, request: ApiRequest, job: EmulatedJob, *, created: bool) -> Answer:
        """The create answer names the model asked for; a retrieve, the upstream model, a
        ``completed_at`` even while running, and no ``seconds``, ``size`` or ``error``."""
        status = self._status(job)
        payload: dict[str, Any] = {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": (job.scenario.status_spelling or {}).get(status, status),
            "progress": self._progress(job),
            "created_at": job.created_at,
        }
        if created:
            payload["task_id"] = job.id
            ratios = {"seconds": int(job.seconds) if job.seconds.isdigit() else 8, "resolution": 1}
            headers = {"X-New-Api-Other-Ratios": json.dumps(ratios, separators=(",", ":"))}
            return Answer(200, json.dumps(payload).encode(), headers=headers)
        payload["model"] = UPSTREAM_MODELS.get(job.model, job.model)
        payload["completed_at"] = job.completed_at or int(time.time())
        if status == "completed" and not job.scenario.missing_video_url:
            payload["video_url"] = self.video_url(
                job, f"{self.site.url}/v1/videos/{quote(job.id, safe='')}/content"
            )
        return Answer(200, json.dumps(payload).encode())

    def check_variant(self, request: ApiRequest, query: str) -> Answer | None:
        return None  # The gateway ignores ?variant=.

    def content_not_ready(self, request: ApiRequest, job: EmulatedJob) -> Answer:
        status = _INTERNAL_STATUS[self._status(job)]
        return _proxy_error(400, f"Task is not completed yet, current status: {status}")

    def content_unavailable(self, request: ApiRequest, job: EmulatedJob) -> Answer:
        return _proxy_error(502, "Failed to resolve Gemini video URL")
