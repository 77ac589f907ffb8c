"""Plain ``requests`` calls against a running emulator, and checks of the gateway's error shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import requests

from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.emulator.newapi_profile import REQUEST_ID_HEADER

AUTH = {"Authorization": "Bearer test-key"}
PROMPT = "A paper kite floats above a field."
TASK_ID = re.compile(r"task_[A-Za-z0-9]{32}")


def create(
    emu: VeoEmulator,
    prompt: str | None = PROMPT,
    *,
    model: str | None = "veo3.1-fast",
    headers: dict[str, str] = AUTH,
    references: Sequence[tuple[str, Any]] = (),
    timeout: float = 10,
    **scalars: str,
) -> requests.Response:
    """A create call as the provider makes it: every field a multipart part, files last."""
    parts: list[tuple[str, Any]] = []
    if model is not None:
        parts.append(("model", (None, model)))
    if prompt is not None:
        parts.append(("prompt", (None, prompt)))
    parts += [(name, (None, value)) for name, value in scalars.items()]
    parts += [("input_reference", reference) for reference in references]
    return requests.post(f"{emu.url}/v1/videos", headers=headers, files=parts, timeout=timeout)


def created_id(emu: VeoEmulator, prompt: str = PROMPT, **kwargs: Any) -> str:
    response = create(emu, prompt, **kwargs)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def get(emu: VeoEmulator, video_id: str, suffix: str = "", **kwargs: Any) -> requests.Response:
    kwargs.setdefault("headers", AUTH)
    kwargs.setdefault("timeout", 10)
    return requests.get(f"{emu.url}/v1/videos/{video_id}{suffix}", **kwargs)


def envelope_error(response: requests.Response) -> dict[str, str]:
    """new-api's envelope (E): the request id of the header ends the message."""
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and set(error) == {"message", "type", "code"}
    assert error["type"] == "new_api_error"
    assert error["message"].endswith(f" (request id: {response.headers[REQUEST_ID_HEADER]})")
    return dict(error)


def flat_error(response: requests.Response) -> dict[str, Any]:
    """new-api's flat task error (F): code, message and a null data, no request id in the body."""
    body = response.json()
    assert set(body) == {"code", "message", "data"} and body["data"] is None
    assert "request id" not in response.text and response.headers[REQUEST_ID_HEADER] not in response.text
    return dict(body)


def proxy_error(response: requests.Response) -> dict[str, str]:
    """new-api's ``/content`` error (P): a message and a type, nothing else."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type"}
    return dict(body["error"])


def is_json(response: requests.Response) -> bool:
    try:
        json.loads(response.content)
    except ValueError:
        return False
    return True
