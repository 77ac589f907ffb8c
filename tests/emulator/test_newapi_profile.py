"""The new-api profile answers as the gateway CometAPI runs (``GATEWAY.md``), checked over plain HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.emulator.newapi_profile import REQUEST_ID_HEADER

from .client import (
    AUTH,
    PNG,
    PROMPT,
    ROOT,
    TASK_ID,
    create,
    created_id,
    envelope_error,
    flat_error,
    get,
    proxy_error,
    served_clip,
)

QUOTA_MESSAGE = "用户额度不足, 剩余额度: ＄0.00"  # noqa: RUF001 - the gateway's own text
SATURATED = "当前分组上游负载已饱和，请稍后再试"  # noqa: RUF001 - the gateway's own text


@pytest.fixture
def gw() -> Iterator[VeoEmulator]:
    with VeoEmulator(server="new-api") as emulator:
        yield emulator


def poll_statuses(gw: VeoEmulator, video_id: str, count: int) -> list[dict[str, object]]:
    answers = []
    for _ in range(count):
        response = get(gw, video_id)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


# --------------------------------------------------------------------------------------------
# The header and the three error shapes
# --------------------------------------------------------------------------------------------


def test_every_api_answer_carries_its_own_request_id(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=0)
    created = create(gw)
    video_id = created.json()["id"]
    answers = [
        created,
        get(gw, video_id),
        get(gw, video_id, "/content"),
        get(gw, "task_unknown"),
        get(gw, "task_unknown", "/content"),
        get(gw, video_id, headers={}),
        requests.delete(f"{gw.url}/v1/videos/{video_id}", headers=AUTH, timeout=10),
        create(gw, None),
    ]
    ids = [answer.headers[REQUEST_ID_HEADER] for answer in answers]
    assert all(re.fullmatch(r"\d{14}[A-Za-z0-9]{12}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)
    assert [a.status_code for a in answers] == [200, 200, 200, 400, 404, 401, 404, 400]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-key"}])
def test_a_missing_or_wrong_key_is_401_invalid_token_in_the_envelope(
    gw: VeoEmulator, headers: dict[str, str]
) -> None:
    for response in (create(gw, headers=headers), get(gw, "task_x", headers=headers)):
        assert response.status_code == 401
        error = envelope_error(response)
        assert error["message"].startswith("Invalid token (request id: ") and error["code"] == ""
    assert gw.jobs == {} and [p.status for p in gw.posts] == [401]


@pytest.mark.parametrize(
    ("failure", "status", "code", "words"),
    [
        (403, 403, "insufficient_user_quota", QUOTA_MESSAGE),
        ("insufficient_user_quota", 403, "insufficient_user_quota", QUOTA_MESSAGE),
        ("pre_consume_token_quota_failed", 403, "pre_consume_token_quota_failed", "token quota"),
        (429, 429, "fail_to_fetch_task", SATURATED),
        (500, 500, "do_request_failed", "EOF"),
        ("get_channel_failed", 500, "get_channel_failed", "veo3.1-fast"),
        ("unmarshal_response_failed", 500, "unmarshal_response_failed", "invalid character"),
        (502, 502, "fail_to_fetch_task", '"code": 502'),
        (504, 504, "fail_to_fetch_task", '"code": 504'),
        ("fail_to_fetch_task", 400, "fail_to_fetch_task", "INVALID_ARGUMENT"),
    ],
)
def test_task_errors_on_create_are_flat_and_create_nothing(
    gw: VeoEmulator, failure: int | str, status: int, code: str, words: str
) -> None:
    gw.scenario = Scenario(post_failure=failure, retry_after=3)
    response = create(gw)
    assert response.status_code == status
    error = flat_error(response)
    assert error["code"] == code and words in error["message"]
    assert "Retry-After" not in response.headers
    assert gw.jobs == {}
    assert create(gw).status_code == 200
    assert [p.status for p in gw.posts] == [status, 200]


@pytest.mark.parametrize(
    ("failure", "status", "code", "message"),
    [
        (
            503,
            503,
            "model_not_found",
            "No available channel for model veo3.1-fast under group default (distributor)",
        ),
        ("model_forbidden", 403, "", "This token has no access to model veo3.1-fast"),
        (401, 401, "", "Invalid token"),
    ],
)
def test_gateway_errors_on_create_are_enveloped_with_the_request_id(
    gw: VeoEmulator, failure: int | str, status: int, code: str, message: str
) -> None:
    gw.scenario = Scenario(post_failure=failure)
    response = create(gw)
    assert response.status_code == status
    error = envelope_error(response)
    assert error["code"] == code and error["message"].startswith(f"{message} (request id: ")
    assert gw.jobs == {}


def test_rate_limited_requests_are_429_without_retry_after(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(rate_limit=2, retry_after=0.25)
    for response in (create(gw), get(gw, "task_x")):
        assert response.status_code == 429 and "Retry-After" not in response.headers
        assert flat_error(response)["message"] == SATURATED
    assert create(gw).status_code == 200


def test_get_faults_are_flat_or_enveloped_as_the_gateway_answers_them(gw: VeoEmulator) -> None:
    video_id = created_id(gw)
    gw.scenario = Scenario(server_errors=[500, 503, 502, 502])
    assert flat_error(get(gw, video_id))["code"] == "do_request_failed"
    assert envelope_error(get(gw, video_id))["code"] == "model_not_found"
    assert flat_error(get(gw, video_id))["code"] == "fail_to_fetch_task"
    content = get(gw, video_id, "/content")
    assert content.status_code == 502
    assert proxy_error(content) == {"message": "Failed to fetch video content", "type": "server_error"}


def test_an_unknown_id_is_400_task_not_exist_and_its_content_404(gw: VeoEmulator) -> None:
    retrieve = get(gw, "task_pa9CKKtYlTdxO7IIHOKKhXfjxEu4EQoR")
    assert retrieve.status_code == 400
    assert flat_error(retrieve) == {"code": "task_not_exist", "message": "task_not_exist", "data": None}
    content = get(gw, "task_pa9CKKtYlTdxO7IIHOKKhXfjxEu4EQoR", "/content")
    assert content.status_code == 404
    assert proxy_error(content) == {"message": "Task not found", "type": "invalid_request_error"}


def test_an_unsupported_route_is_404_invalid_url(gw: VeoEmulator) -> None:
    response = requests.delete(f"{gw.url}/v1/videos/task_x?force=1", headers=AUTH, timeout=10)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "Invalid URL (DELETE /v1/videos/task_x)",
            "type": "invalid_request_error",
            "param": "",
            "code": "",
        }
    }


# --------------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------------


def test_a_missing_prompt_is_a_flat_invalid_request(gw: VeoEmulator) -> None:
    response = create(gw, None)
    assert response.status_code == 400
    assert flat_error(response) == {"code": "invalid_request", "message": "prompt is required", "data": None}


def test_two_text_input_reference_parts_are_a_flat_invalid_json(gw: VeoEmulator) -> None:
    urls = [(None, "https://example.com/first.png"), (None, "https://example.com/last.png")]
    response = create(gw, model="veo3.1", references=urls)
    assert response.status_code == 400
    error = flat_error(response)
    assert error["code"] == "invalid_json" and "input_reference" in error["message"]
    files = [("first.png", PNG, "image/png"), ("last.png", PNG, "image/png")]
    assert create(gw, model="veo3.1", references=files).status_code == 200
    assert len(gw.jobs) == 1


def test_other_invalid_fields_come_back_as_google_errors_relayed_flat(gw: VeoEmulator) -> None:
    response = create(gw, seconds="5")
    assert response.status_code == 400
    error = flat_error(response)
    assert error["code"] == "fail_to_fetch_task"
    upstream = json.loads(error["message"])["error"]
    assert upstream["status"] == "INVALID_ARGUMENT" and "seconds" in upstream["message"]


def test_the_create_answer_is_unknown_with_a_task_id_and_the_billing_ratios(gw: VeoEmulator) -> None:
    response = create(gw)
    job = response.json()
    assert TASK_ID.fullmatch(job["id"])
    assert job == {
        "id": job["id"],
        "task_id": job["id"],
        "object": "video",
        "model": "veo3.1-fast",
        "status": "unknown",
        "progress": 0,
        "created_at": job["created_at"],
    }
    # Without ``seconds``, Veo's default of 8 applies and is billed.
    assert response.headers["X-New-Api-Other-Ratios"] == '{"seconds":8,"resolution":1}'
    assert create(gw, seconds="4").headers["X-New-Api-Other-Ratios"] == '{"seconds":4,"resolution":1}'


# --------------------------------------------------------------------------------------------
# Retrieve
# --------------------------------------------------------------------------------------------


def test_a_job_goes_unknown_then_in_progress_by_coarse_steps_then_completed(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=5)
    video_id = created_id(gw)
    answers = poll_statuses(gw, video_id, 6)
    assert [a["status"] for a in answers] == ["unknown", *["in_progress"] * 4, "completed"]
    assert [a["progress"] for a in answers] == [0, 20, 30, 50, 50, 100]
    for answer in answers:
        assert answer["model"] == "veo-3.1-fast-generate-preview"
        assert isinstance(answer["completed_at"], int)  # Even while running, as the gateway sets it.
        assert not {"seconds", "size", "error", "task_id"} & set(answer)
    assert "video_url" in answers[-1] and "video_url" not in answers[-2]


def test_queued_shows_once_the_gateway_has_looked_at_a_job(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(seconds_until_done=5)
    video_id = created_id(gw)
    assert [a["status"] for a in poll_statuses(gw, video_id, 3)] == ["unknown", "queued", "queued"]


@pytest.mark.parametrize("outcome", ["failed", "error"])
def test_a_failed_job_is_failed_at_100_without_a_reason(gw: VeoEmulator, outcome: str) -> None:
    gw.scenario = Scenario(outcome=outcome, polls_until_done=1)
    video_id = created_id(gw)
    answers = poll_statuses(gw, video_id, 2)
    assert [(a["status"], a["progress"]) for a in answers] == [("unknown", 0), ("failed", 100)]
    assert "error" not in answers[-1] and "video_url" not in answers[-1]
    content = get(gw, video_id, "/content")
    assert content.status_code == 400
    assert proxy_error(content)["message"] == "Task is not completed yet, current status: FAILURE"


# --------------------------------------------------------------------------------------------
# /content
# --------------------------------------------------------------------------------------------


def test_video_url_is_the_gateways_own_content_and_needs_the_key(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=0)
    video_id = created_id(gw)
    video_url = get(gw, video_id).json()["video_url"]
    assert video_url == f"{gw.url}/v1/videos/{video_id}/content"
    refused = requests.get(video_url, timeout=10)
    assert refused.status_code == 401 and envelope_error(refused)["message"].startswith("Invalid token")
    video = requests.get(video_url, headers=AUTH, timeout=10)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    assert video.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in video.headers
    assert video.content == served_clip(gw, video_id)
    thumbnail = get(gw, video_id, "/content", params={"variant": "thumbnail"})
    assert thumbnail.content == served_clip(gw, video_id)  # Ignored.
    assert gw.jobs[video_id].downloads == 2
    assert not [r for r in gw.requests if r.listener == "cdn"]


def test_content_before_completion_names_the_internal_status(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=3)
    video_id = created_id(gw)
    statuses = []
    for _ in range(3):
        response = get(gw, video_id, "/content")
        assert response.status_code == 400
        statuses.append(proxy_error(response)["message"])
        get(gw, video_id)
    assert statuses == [
        "Task is not completed yet, current status: NOT_START",
        "Task is not completed yet, current status: NOT_START",
        "Task is not completed yet, current status: IN_PROGRESS",
    ]


def test_the_cli_serves_the_new_api_profile() -> None:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_veo.testing.emulator",
        "--port",
        "0",
        "--server",
        "new-api",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().rstrip().endswith("(new-api profile)")
            line = process.stdout.readline()
            connection = json.loads(line.strip().split("=", 1)[1].strip("'"))
            response = requests.post(
                connection["host"] + "/v1/videos", headers=AUTH, files={"prompt": (None, PROMPT)}, timeout=10
            )
            assert response.status_code == 200 and response.json()["status"] == "unknown"
            assert TASK_ID.fullmatch(response.json()["id"]) and REQUEST_ID_HEADER in response.headers
        finally:
            process.terminate()


def test_the_server_name_is_checked() -> None:
    with pytest.raises(ValueError, match="server must be one of"):
        VeoEmulator(server="sora")
    assert VeoEmulator(server="new-api", id_style="colon").id_style == "colon"
    assert VeoEmulator().server == "docs" and VeoEmulator().id_style == "colon"
