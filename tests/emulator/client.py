"""Plain ``requests`` calls against a running emulator, what it should serve, and checks of its error
shapes (the documented envelope and the gateway's): the helpers of every emulator test."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from airflow_provider_veo import api
from airflow_provider_veo.mp4 import Mp4Info, Mp4Walker
from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.emulator.bodies import Clip, clip_bytes
from airflow_provider_veo.testing.emulator.newapi_profile import REQUEST_ID_HEADER

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": "Bearer test-key"}
#: Reference images of each type Veo takes: a real PNG, and the smallest headers of a JPEG and a WebP.
PNG = (ROOT / "example_dags" / "frames" / "first_frame.png").read_bytes()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(64)
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
    """A GET of the job (or of ``suffix`` under it), its id encoded as the provider encodes it."""
    kwargs.setdefault("headers", AUTH)
    kwargs.setdefault("timeout", 10)
    return requests.get(f"{emu.url}{api.video_path(video_id)}{suffix}", **kwargs)


def poll(emu: VeoEmulator, video_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """Every answer up to and including the terminal one."""
    answers = []
    for _ in range(limit):
        response = get(emu, video_id)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        if api.job_state(answers[-1]["status"]).is_terminal:
            return answers
    raise AssertionError(f"{video_id} did not finish in {limit} polls: {answers[-1]}")


def served_clip(emu: VeoEmulator, video_id: str) -> bytes:
    """The sample clip as the emulator serves it for this job: its header says the job's seconds and size."""
    job = emu.jobs[video_id]
    return clip_bytes(Clip.of(job.seconds, job.size))


def inspect_bytes(body: bytes) -> Mp4Info:
    """What the provider's download verifier makes of a body served by the emulator."""
    walker = Mp4Walker()
    walker.feed(body)
    return walker.finish()


def error_of(response: requests.Response) -> dict[str, str]:
    """The documented envelope's error object, after checking the envelope's shape."""
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert re.search(r"\(request id: \w+\)$", error["message"]), error["message"]
    return dict(error)


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
