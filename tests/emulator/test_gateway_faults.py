"""The gateway's faults, injected per scenario, in both profiles: each profile words them its own way."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_veo.testing import Scenario, VeoEmulator

from .client import AUTH, PROMPT, create, created_id, flat_error, get, is_json, proxy_error, served_clip


@pytest.fixture(params=["docs", "new-api"])
def emu(request: pytest.FixtureRequest) -> Iterator[VeoEmulator]:
    with VeoEmulator(server=request.param) as emulator:
        yield emulator


@pytest.fixture
def docs() -> Iterator[VeoEmulator]:
    with VeoEmulator() as emulator:
        yield emulator


@pytest.fixture
def gw() -> Iterator[VeoEmulator]:
    with VeoEmulator(server="new-api") as emulator:
        yield emulator


def raw_content(emu: VeoEmulator, video_id: str) -> bytes:
    """``/content`` read off the socket until the server closes it, framing included."""
    host, port = emu.url.removeprefix("http://").split(":")
    request = (
        f"GET /v1/videos/{video_id}/content HTTP/1.1\r\nHost: {host}\r\n"
        "Authorization: Bearer test-key\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(request.encode())
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_an_html_502_from_a_proxy_in_front_is_not_json_and_the_job_exists(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(post_failure="html_502")
    response = create(emu)
    assert response.status_code == 502 and response.headers["Content-Type"] == "text/html"
    assert b"502 Bad Gateway" in response.content and not is_json(response)
    assert len(emu.jobs) == 1  # The gateway behind the proxy went on: a retry would pay twice.
    assert create(emu).status_code == 200 and len(emu.jobs) == 2
    assert [p.status for p in emu.posts] == [502, 200]


def test_a_slow_create_has_created_its_job_before_it_answers(emu: VeoEmulator) -> None:
    prompt = f"{PROMPT} [emu:create_delay=0.6]"
    with pytest.raises(requests.ReadTimeout):
        create(emu, prompt, timeout=0.2)
    assert len(emu.jobs) == 1
    started = time.monotonic()
    assert create(emu, prompt).status_code == 200
    assert time.monotonic() - started >= 0.6 and len(emu.jobs) == 2


def test_a_job_not_visible_yet_answers_as_an_unknown_id_for_its_first_gets(emu: VeoEmulator) -> None:
    video_id = created_id(emu, f"{PROMPT} [emu:hidden=3,polls=0]")
    first, second, third = get(emu, video_id), get(emu, video_id, "/content"), get(emu, video_id)
    if emu.server == "new-api":
        assert [first.status_code, second.status_code, third.status_code] == [400, 404, 400]
        assert flat_error(first)["code"] == "task_not_exist"
        assert proxy_error(second)["message"] == "Task not found"
    else:
        assert [first.status_code, second.status_code, third.status_code] == [404, 404, 404]
        assert first.json()["error"]["code"] == "task_not_exist"
    assert emu.jobs[video_id].polls == 0
    assert get(emu, video_id).json()["status"] == "completed"


def test_a_failed_job_can_answer_an_error_only_body(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(
        outcome="failed",
        polls_until_done=1,
        error_only_body=True,
        error_code="upstream_error",
        error_message="boom",
    )
    video_id = created_id(emu)
    assert get(emu, video_id).json()["status"] in ("queued", "unknown")
    response = get(emu, video_id)
    assert response.status_code == 200
    assert response.json() == {"error": {"message": "boom", "type": "upstream_error"}, "id": video_id}


def test_content_unavailable_is_a_502_forever(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=0, content_unavailable=True)
    video_id = created_id(emu)
    job = get(emu, video_id).json()
    assert job["status"] == "completed"
    for _ in range(3):
        response = get(emu, video_id, "/content")
        assert response.status_code == 502
    if emu.server == "new-api":
        assert proxy_error(response) == {
            "message": "Failed to resolve Gemini video URL",
            "type": "server_error",
        }
        assert job["video_url"].endswith("/content")
    else:
        assert response.json()["error"]["message"].startswith("Failed to fetch video content")
        assert "video_url" not in job
    assert emu.jobs[video_id].downloads == 0


def test_a_chunked_content_cut_mid_file_ends_cleanly(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=0, content_cut_at=10_000)
    video_id = created_id(gw)
    get(gw, video_id)
    response = get(gw, video_id, "/content")
    assert response.status_code == 200 and "Content-Length" not in response.headers
    clip = served_clip(gw, video_id)
    assert response.content == clip[:10_000]  # No error: the framing says the body is whole.
    raw = raw_content(gw, video_id)
    assert raw.endswith(b"\r\n0\r\n\r\n") and b"Transfer-Encoding: chunked" in raw
    video_url = get(gw, video_id).json()["video_url"]
    assert requests.get(video_url, headers=AUTH, timeout=10).content == clip[:10_000]


def test_a_cut_with_a_content_length_closes_short(docs: VeoEmulator) -> None:
    emu = docs
    emu.scenario = Scenario(polls_until_done=0, content_cut_at=10_000)
    video_id = created_id(emu)
    video_url = get(emu, video_id).json()["video_url"]
    response = get(emu, video_id, "/content", stream=True)
    clip = served_clip(emu, video_id)
    assert int(response.headers["Content-Length"]) == len(clip)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        b"".join(response.iter_content(65536))
    assert requests.get(video_url, timeout=10).content == clip  # The CDN is not affected.


def test_a_truncated_chunked_content_breaks_off_without_the_zero_chunk(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=0, truncate_download=True)
    video_id = created_id(gw)
    get(gw, video_id)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        b"".join(get(gw, video_id, "/content", stream=True).iter_content(65536))
    raw = raw_content(gw, video_id)
    assert not raw.endswith(b"0\r\n\r\n") and len(raw) < len(served_clip(gw, video_id))


def test_a_corrupt_chunked_content_is_not_an_mp4(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(polls_until_done=0, corrupt_download=True)
    video_id = created_id(gw)
    get(gw, video_id)
    body = get(gw, video_id, "/content").content
    clip = served_clip(gw, video_id)
    assert len(body) == len(clip) and body[:32] == bytes(32) and body[32:] == clip[32:]


def test_the_new_fields_work_from_a_marker_in_the_gateway_profile(gw: VeoEmulator) -> None:
    prompt = f"{PROMPT} [emu:post_failure=pre_consume_token_quota_failed,hidden=1,polls=0,cut=100]"
    refused = create(gw, prompt)
    assert refused.status_code == 403 and flat_error(refused)["code"] == "pre_consume_token_quota_failed"
    video_id = created_id(gw, prompt)  # A marker's failure hits the first create with its prompt only.
    assert get(gw, video_id).status_code == 400
    assert get(gw, video_id).json()["status"] == "completed"
    assert len(get(gw, video_id, "/content").content) == 100
    assert [p.status for p in gw.posts] == [403, 200]


# --------------------------------------------------------------------------------------------
# Since August 2026: dead models, model-limited keys, the internal task view, /content's guard
# --------------------------------------------------------------------------------------------


def test_a_retired_model_is_a_flat_404_every_time_and_creates_nothing(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(model_unavailable="retired")
    for _ in range(3):
        response = create(gw, model="veo3")
        error = flat_error(response)
        assert response.status_code == 404 and error["code"] == "fail_to_fetch_task"
        assert "models/veo3 is no longer available" in error["message"]
    assert gw.jobs == {} and [p.status for p in gw.posts] == [404] * 3


def test_no_channel_for_the_model_is_a_503_every_time(gw: VeoEmulator) -> None:
    gw.queue_scenario(Scenario(model_unavailable="no_channel"))
    assert [create(gw).status_code for _ in range(3)] == [503] * 3
    assert gw.jobs == {}
    assert create(gw, f"{PROMPT} [emu:gone=retired]").status_code == 404  # a marker works too


def test_a_model_limited_key_is_refused_the_first_reads(emu: VeoEmulator) -> None:
    video_id = created_id(emu, f"{PROMPT} [emu:denied=2]")
    first, content, third = get(emu, video_id), get(emu, video_id, "/content"), get(emu, video_id)
    assert (first.status_code, content.status_code, third.status_code) == (403, 403, 200)
    assert "This token has no access to model" in first.json()["error"]["message"]


def test_a_model_limited_key_emulator_wide_refuses_unknown_ids_too(gw: VeoEmulator) -> None:
    gw.scenario = Scenario(model_access_denied_polls=1)
    assert get(gw, "airflow-connection-test").status_code == 403
    assert get(gw, "airflow-connection-test").status_code == 400  # then task_not_exist


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_the_internal_task_view(emu: VeoEmulator, outcome: str) -> None:
    video_id = created_id(emu, f"{PROMPT} [emu:internal_task_shape=true,polls=1,outcome={outcome}]")
    running, done = get(emu, video_id).json(), get(emu, video_id).json()
    assert set(done) >= {"task_id", "platform", "status", "progress", "fail_reason", "created_at"}
    assert "id" not in done and "video_url" not in done
    assert running["status"] == "QUEUED" and done["progress"].endswith("%")
    assert done["status"] == ("SUCCESS" if outcome == "completed" else "FAILURE")
    assert bool(done["fail_reason"]) is (outcome == "failed") and "finished_at" in done


def test_content_request_blocked(gw: VeoEmulator) -> None:
    video_id = created_id(gw, f"{PROMPT} [emu:polls=0,content_blocked=true]")
    get(gw, video_id)
    response = get(gw, video_id, "/content")
    assert response.status_code == 403 and proxy_error(response)["message"].startswith("request blocked")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("{api}/admin/keys", "{api}/admin/keys"), ("http://169.254.169.254/x", "http://169.254.169.254/x")],
)
def test_a_video_url_of_the_scenarios_choice(emu: VeoEmulator, given: str, expected: str) -> None:
    video_id = created_id(emu, PROMPT)
    emu.jobs[video_id].scenario.video_url = given
    emu.jobs[video_id].scenario.polls_until_done = 0
    assert get(emu, video_id).json()["video_url"] == expected.replace("{api}", emu.url)


def test_broken_poll_bodies_then_the_job(emu: VeoEmulator) -> None:
    video_id = created_id(emu, f"{PROMPT} [emu:broken=nested|malformed|not_utf8]")
    bodies = [get(emu, video_id) for _ in range(4)]
    assert all(b.status_code == 200 for b in bodies)
    assert len(bodies[0].content) > 200_000
    with pytest.raises(RecursionError):
        bodies[0].json()
    assert [is_json(b) for b in bodies[1:]] == [False, False, True]
    with pytest.raises(UnicodeDecodeError):
        bodies[2].content.decode("utf-8")
    assert emu.jobs[video_id].polls == 1  # broken answers do not move the job
