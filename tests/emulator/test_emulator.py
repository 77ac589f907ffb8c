"""Tests of the CometAPI emulator itself, with plain ``requests`` against it on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_veo import api
from airflow_provider_veo.mp4 import Mp4Error
from airflow_provider_veo.testing import SAMPLE_MP4, Scenario, VeoEmulator
from airflow_provider_veo.testing.emulator import MODELS, parse_marker
from airflow_provider_veo.testing.emulator.models import MAX_REFERENCE_BYTES, UNKNOWN_MODEL_MAX_REFERENCES

from .client import (
    AUTH,
    JPEG,
    PNG,
    ROOT,
    WEBP,
    create,
    created_id,
    error_of,
    get,
    inspect_bytes,
    poll,
    served_clip,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def emu() -> Iterator[VeoEmulator]:
    with VeoEmulator() as emulator:
        yield emulator


# --------------------------------------------------------------------------------------------
# Authentication, create, poll
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-key"}])
def test_a_missing_or_wrong_key_is_401_and_creates_nothing(emu: VeoEmulator, headers: dict[str, str]) -> None:
    response = create(emu, headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert (error["type"], error["code"]) == ("comet_api_error", "invalid_api_key")
    assert emu.jobs == {}
    assert [post.status for post in emu.posts] == [401]
    assert get(emu, "veo3.1:1-abc", headers=headers).status_code == 401


def test_create_then_poll_to_completed_with_rising_progress(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=3)
    before = int(time.time())
    job = create(emu, seconds="8", size="720x1280").json()
    assert re.fullmatch(r"veo3\.1-fast:\d{10}-[A-Za-z0-9]{10}", job["id"])
    assert job == {
        "id": job["id"],
        "task_id": job["id"],
        "object": "video",
        "model": "veo3.1-fast",
        "status": "queued",
        "progress": 0,
        "created_at": job["created_at"],
        "seconds": "8",
        "size": "720x1280",
    }
    assert before <= job["created_at"] <= time.time()

    answers = poll(emu, job["id"])
    assert [a["status"] for a in answers] == ["queued", "in_progress", "in_progress", "completed"]
    progress = [a["progress"] for a in answers]
    assert progress == sorted(progress) and len(set(progress)) == 4 and progress[-1] == 100
    done = answers[-1]
    assert done["completed_at"] >= job["created_at"]
    assert done["video_url"].startswith(f"{emu.cdn_url}/files/")
    assert "video_url" not in answers[-2] and "completed_at" not in answers[-2]

    video = requests.get(done["video_url"], timeout=10)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert int(video.headers["Content-Length"]) == len(video.content) == emu.expected_bytes(job["id"])
    assert video.content == served_clip(emu, job["id"])
    assert hashlib.sha256(video.content).hexdigest() == emu.expected_sha256(job["id"])
    info = inspect_bytes(video.content)
    assert info.boxes[:2] == ("ftyp", "moov")
    assert (info.duration_seconds, info.width, info.height) == (8.0, 720, 1280)  # the job's seconds and size
    assert emu.jobs[job["id"]].polls == 4 and emu.jobs[job["id"]].downloads == 1


def test_defaults_follow_the_route_of_the_model(emu: VeoEmulator) -> None:
    fast = create(emu).json()
    assert (fast["seconds"], fast["size"]) == ("4", "1280x720")
    no_model = create(emu, model=None).json()
    assert no_model["model"] == "veo3.1" and no_model["id"].startswith("veo3.1:")
    pro = create(emu, model="veo3-pro", size="9x16").json()
    assert (pro["seconds"], pro["size"]) == ("8", "9x16")
    unknown = create(emu, model="veo4-preview", seconds="5", size="1x2").json()
    assert (unknown["model"], unknown["seconds"], unknown["size"]) == ("veo4-preview", "5", "1x2")


@pytest.mark.parametrize("outcome", ["failed", "error"])
def test_failed_and_error_outcomes_carry_the_error_object(emu: VeoEmulator, outcome: str) -> None:
    emu.scenario = Scenario(
        outcome=outcome, polls_until_done=1, error_code="upstream_error", error_message="boom"
    )
    video_id = created_id(emu)
    answers = poll(emu, video_id)
    assert [a["status"] for a in answers] == ["queued", outcome]
    assert answers[-1]["error"] == {"code": "upstream_error", "message": "boom"}
    assert "video_url" not in answers[-1]
    assert get(emu, video_id, "/content").status_code == 400


def test_a_default_failure_is_a_content_policy_refusal(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(outcome="failed", polls_until_done=0)
    job = api.VideoJob.from_json(get(emu, created_id(emu)).json())
    assert job.state is api.JobState.FAILED
    assert (job.error_code, job.error_message) == (
        "content_policy_violation",
        "The prompt was blocked by the safety filter",
    )


@pytest.mark.parametrize(
    ("id_style", "pattern"),
    [("colon", r"veo3\.1-fast:\d{10}-[A-Za-z0-9]{10}"), ("task", r"task_[A-Za-z0-9]{32}")],
)
def test_ids_of_both_styles_are_retrievable_raw_and_percent_encoded(id_style: str, pattern: str) -> None:
    with VeoEmulator(id_style=id_style) as emu:
        video_id = created_id(emu)
        assert re.fullmatch(pattern, video_id)
        encoded = video_id.replace(":", "%3A")
        for path in (f"/v1/videos/{video_id}", f"/v1/videos/{encoded}"):
            response = requests.get(emu.url + path, headers=AUTH, timeout=10)
            assert response.status_code == 200
            assert response.json()["id"] == response.json()["task_id"] == video_id
        assert emu.jobs[video_id].polls == 2


def test_an_unknown_id_is_404(emu: VeoEmulator) -> None:
    response = get(emu, "veo3.1:1764905797-816jUFZAkM")
    assert response.status_code == 404
    assert error_of(response)["code"] == "task_not_exist"
    assert get(emu, "veo3.1:1764905797-816jUFZAkM", "/content").status_code == 404


def test_seconds_until_done_finishes_on_the_clock(emu: VeoEmulator) -> None:
    """The job's age moves it along; the test ages it by moving its start back, never by sleeping."""
    emu.scenario = Scenario(seconds_until_done=100, polls_until_done=1000)
    video_id = created_id(emu)
    job = emu.jobs[video_id]  # the live job
    assert get(emu, video_id).json()["status"] == "queued"  # the first fifth of its time
    job.started -= 50
    running = get(emu, video_id).json()
    assert running["status"] == "in_progress" and 50 <= running["progress"] < 100
    job.started -= 50
    assert get(emu, video_id, "/content").status_code == 200  # Done without another retrieve.
    assert get(emu, video_id).json()["status"] == "completed"


def test_status_spelling_is_applied(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(
        status_spelling={"queued": "QUEUED", "in_progress": "IN_PROGRESS", "completed": "SUCCESS"}
    )
    answers = poll(emu, created_id(emu))
    assert [a["status"] for a in answers] == ["QUEUED", "IN_PROGRESS", "SUCCESS"]
    assert "video_url" in answers[-1]


def test_queued_scenarios_are_used_in_order_then_the_default(emu: VeoEmulator) -> None:
    emu.queue_scenario(Scenario(outcome="failed", polls_until_done=0))
    emu.queue_scenario(Scenario(outcome="error", polls_until_done=0))
    ids = [created_id(emu) for _ in range(3)]
    assert [get(emu, i).json()["status"] for i in ids] == ["failed", "error", "queued"]


# --------------------------------------------------------------------------------------------
# Strictness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"seconds": "5"}, "seconds"),
        ({"seconds": "8.0"}, "seconds"),
        ({"model": "veo3-pro", "seconds": "4"}, "8-second"),
        ({"size": "1080x1920"}, "size"),
        ({"size": "1280X720"}, "size"),
        ({"model": "veo3.1", "size": "1080x1920"}, "size"),
        ({"model": "veo3.1-pro", "size": "wide"}, "size"),
        ({"model": "veo3.1-pro", "size": "16x16"}, "size"),
        ({"model": "veo3.1-pro", "size": "0x9"}, "size"),
        ({"references": [("a.png", PNG, "image/png")] * 2}, "at most 1"),
        ({"model": "veo3.1", "references": [("a.png", PNG, "image/png")] * 3}, "at most 2"),
        ({"model": "veo4", "references": [("a.png", PNG, "image/png")] * 3}, "at most 2"),
        ({"references": [("a.png", b"GIF89a" + bytes(30), "image/png")]}, "not a PNG"),
        ({"references": [("a.png", b"", "image/png")]}, "not a PNG"),
        ({"references": [(None, "file:///etc/passwd")]}, "http(s) URL"),
    ],
)
def test_invalid_creates_are_400_and_create_nothing(
    emu: VeoEmulator, kwargs: dict[str, Any], words: str
) -> None:
    response = create(emu, **kwargs)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert words in error["message"] and error["type"] == "comet_api_error"
    assert emu.jobs == {}


def test_valid_references_are_accepted(emu: VeoEmulator) -> None:
    assert create(emu, references=[("first.webp", WEBP, "image/webp")]).status_code == 200
    two = [("first.png", PNG, "image/png"), ("last.jpg", JPEG, "image/jpeg")]
    assert create(emu, model="veo3.1", references=two).status_code == 200
    by_url = [(None, "https://example.com/first.png"), (None, "http://example.com/last.png")]
    assert create(emu, model="veo3-fast", size="16x9", references=by_url).status_code == 200
    assert len(emu.jobs) == 3


def test_an_oversized_reference_is_refused(emu: VeoEmulator) -> None:
    big = PNG + bytes(api.MAX_REFERENCE_BYTES + 1 - len(PNG))
    response = create(emu, references=[("big.png", big, "image/png")])
    assert response.status_code == 400
    assert "over" in error_of(response)["message"]
    assert emu.posts[-1].files[0].size == api.MAX_REFERENCE_BYTES + 1


@pytest.mark.parametrize(
    "send",
    [
        lambda url: requests.post(url, headers=AUTH, data={"model": "veo3.1", "prompt": "x"}, timeout=10),
        lambda url: requests.post(url, headers=AUTH, json={"model": "veo3.1", "prompt": "x"}, timeout=10),
        lambda url: requests.post(
            url, headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"}, data=b"junk", timeout=10
        ),
    ],
    ids=["urlencoded", "json", "malformed-multipart"],
)
def test_a_body_that_is_not_multipart_is_400(emu: VeoEmulator, send: Any) -> None:
    response = send(f"{emu.url}/v1/videos")
    assert response.status_code == 400
    assert "multipart" in error_of(response)["message"].lower()
    assert emu.jobs == {}


def test_a_chunked_multipart_body_is_read(emu: VeoEmulator) -> None:
    files = {"model": (None, "veo3.1"), "prompt": (None, "chunked")}
    prepared = requests.Request("POST", f"{emu.url}/v1/videos", files=files).prepare()
    body = prepared.body
    assert isinstance(body, bytes)
    headers = {**AUTH, "Content-Type": prepared.headers["Content-Type"]}
    response = requests.post(prepared.url, headers=headers, data=iter([body[:50], body[50:]]), timeout=10)
    assert response.status_code == 200, response.text
    assert emu.posts[-1].headers["transfer-encoding"] == "chunked"
    assert emu.posts[-1].form == [("model", "veo3.1"), ("prompt", "chunked")]


def test_unsupported_methods_and_paths_are_404(emu: VeoEmulator) -> None:
    video_id = created_id(emu)
    assert requests.delete(emu.url + api.video_path(video_id), headers=AUTH, timeout=10).status_code == 404
    assert requests.get(f"{emu.url}/v1/videos", headers=AUTH, timeout=10).status_code == 404
    files = {"prompt": (None, "x")}
    wrong_path = requests.post(f"{emu.url}/v1/v1/videos", headers=AUTH, files=files, timeout=10)
    assert wrong_path.status_code == 404
    assert len(emu.jobs) == 1


# --------------------------------------------------------------------------------------------
# Downloads and the CDN
# --------------------------------------------------------------------------------------------


def test_content_is_400_before_completion_and_the_video_after(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=1, missing_video_url=True)
    video_id = created_id(emu)
    early = get(emu, video_id, "/content")
    assert early.status_code == 400
    error = error_of(early)
    assert error["type"] == "invalid_request_error" and "not ready" in error["message"]
    done = poll(emu, video_id)[-1]
    assert done["status"] == "completed" and "video_url" not in done
    content = get(emu, video_id, "/content")
    assert content.status_code == 200 and content.headers["Content-Type"] == "video/mp4"
    assert content.content == served_clip(emu, video_id)
    assert get(emu, video_id, "/content", params={"variant": "thumbnail"}).status_code == 400
    assert get(emu, video_id, "/content", headers={}).status_code == 401


def test_the_cdn_refuses_authorization_and_records_it(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=0)
    url = get(emu, created_id(emu)).json()["video_url"]
    refused = requests.get(url, headers=AUTH, timeout=10)
    assert refused.status_code == 403 and b"Authorization" in refused.content
    assert emu.cdn_authorization_attempts == 1
    cdn = [r for r in emu.requests if r.listener == "cdn"]
    assert len(cdn) == 1 and cdn[0].headers["authorization"] == "Bearer test-key" and cdn[0].status == 403
    assert requests.get(url, timeout=10).status_code == 200
    assert requests.get(f"{emu.cdn_url}/files/guessed.mp4", timeout=10).status_code == 404
    emu.reset_records()
    assert emu.requests == [] and emu.cdn_authorization_attempts == 0


def test_a_truncated_download_breaks_off_on_both_paths(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=0, truncate_download=True)
    video_id = created_id(emu)
    url = get(emu, video_id).json()["video_url"]
    for response in (requests.get(url, stream=True, timeout=10), get(emu, video_id, "/content", stream=True)):
        assert int(response.headers["Content-Length"]) == len(served_clip(emu, video_id))
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(response.iter_content(65536))


def test_a_corrupt_download_is_not_an_mp4(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=0, corrupt_download=True)
    video_id = created_id(emu)
    body = requests.get(get(emu, video_id).json()["video_url"], timeout=10).content
    assert len(body) == emu.expected_bytes(video_id)
    with pytest.raises(Mp4Error, match="does not start with an 'ftyp' box"):
        inspect_bytes(body)
    assert hashlib.sha256(body).hexdigest() != emu.expected_sha256(video_id)


def test_expired_urls_stay_expired_and_a_fresh_retrieve_gives_a_working_one(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(polls_until_done=0, expired_url_fetches=2)
    video_id = created_id(emu)
    urls = []
    for expected in (403, 403, 200):
        urls.append(get(emu, video_id).json()["video_url"])
        response = requests.get(urls[-1], timeout=10)
        assert response.status_code == expected
        if expected == 403:
            assert b"expired" in response.content
            assert response.headers["Content-Type"] == "application/xml"
    assert len(set(urls)) == 3
    assert requests.get(urls[0], timeout=10).status_code == 403
    assert requests.get(urls[2], timeout=10).status_code == 200


def test_a_large_body_streams_with_the_expected_size_and_digest(emu: VeoEmulator) -> None:
    size = 8 * 1024 * 1024 + 123
    emu.scenario = Scenario(polls_until_done=0, video_bytes=size)
    video_id = created_id(emu)
    url = get(emu, video_id).json()["video_url"]
    for response in (requests.get(url, stream=True, timeout=10), get(emu, video_id, "/content", stream=True)):
        assert int(response.headers["Content-Length"]) == size
        digest, total, head = hashlib.sha256(), 0, b""
        for chunk in response.iter_content(1024 * 1024):
            head = head or chunk[:32]
            digest.update(chunk)
            total += len(chunk)
        assert total == size == emu.expected_bytes(video_id)
        assert (
            digest.hexdigest()
            == emu.expected_sha256(video_id)
            != hashlib.sha256(served_clip(emu, video_id)).hexdigest()
        )
        assert head == SAMPLE_MP4.read_bytes()[:32]  # A real ftyp box.


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(rate_limit=2, retry_after=0.25)
    for _ in range(2):
        response = create(emu)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "0.25"
        error = api.error_from_response(429, response.content, response.headers["Retry-After"])
        assert isinstance(error, api.VeoTransientError)
        assert error.retry_after == 0.25 and not error.job_may_exist
    assert create(emu).status_code == 200
    assert [p.status for p in emu.posts] == [429, 429, 200]
    assert len(emu.jobs) == 1


def test_a_server_error_burst_hits_the_next_gets_in_order(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(server_errors=[500, 502, 503, 504, 524])
    video_id = created_id(emu)  # A create is not a GET: unaffected.
    statuses, codes = [], []
    for _ in range(5):
        response = get(emu, video_id)
        statuses.append(response.status_code)
        codes.append(error_of(response)["code"])
    assert statuses == [500, 502, 503, 504, 524]
    assert codes[2] == "model_not_found" and codes[0] != "invalid_request"
    assert get(emu, video_id).json()["status"] == "queued"
    assert emu.jobs[video_id].polls == 1


def test_a_post_failure_with_a_status_creates_nothing_once(emu: VeoEmulator) -> None:
    emu.scenario = Scenario(post_failure=503)
    failed = create(emu)
    assert failed.status_code == 503 and error_of(failed)["code"] == "model_not_found"
    assert emu.jobs == {}
    assert create(emu).status_code == 200
    assert len(emu.jobs) == 1


@pytest.mark.parametrize(("failure", "jobs_created"), [("reset_before_create", 0), ("reset_after_create", 1)])
def test_a_post_reset_drops_the_connection(emu: VeoEmulator, failure: str, jobs_created: int) -> None:
    emu.scenario = Scenario(post_failure=failure)
    with pytest.raises(requests.ConnectionError):
        create(emu)
    assert len(emu.jobs) == jobs_created
    assert [p.status for p in emu.posts] == [None]
    assert emu.posts[0].form[1] == ("prompt", "A paper kite floats above a field.")
    assert create(emu).status_code == 200


def test_reset_gets_drop_the_next_gets_then_recover_on_the_same_session(emu: VeoEmulator) -> None:
    video_id = created_id(emu)
    emu.scenario = Scenario(reset_gets=2)
    with requests.Session() as session:
        session.headers.update(AUTH)
        url = emu.url + api.video_path(video_id)
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                session.get(url, timeout=10)
        assert session.get(url, timeout=10).json()["status"] == "queued"
    assert emu.jobs[video_id].polls == 1


def test_slow_answers_exceed_a_client_timeout_then_latency_applies(emu: VeoEmulator) -> None:
    video_id = created_id(emu)
    emu.scenario = Scenario(slow_first_n=1, slow_seconds=0.6, latency=0.05)
    with pytest.raises(requests.ReadTimeout):
        get(emu, video_id, timeout=0.3)
    started = time.monotonic()
    assert get(emu, video_id).status_code == 200
    assert 0.05 <= time.monotonic() - started < 0.5


# --------------------------------------------------------------------------------------------
# Prompt markers
# --------------------------------------------------------------------------------------------


def test_a_prompt_marker_shapes_only_its_own_job(emu: VeoEmulator) -> None:
    marked = created_id(emu, "A storm [emu:outcome=failed,polls=0,code=quota,message=out%2C of credit]")
    plain = created_id(emu)
    assert get(emu, marked).json()["error"] == {"code": "quota", "message": "out, of credit"}
    assert get(emu, plain).json()["status"] == "queued"


def test_marker_lists_and_dictionaries(emu: VeoEmulator) -> None:
    video_id = created_id(emu, "[emu:polls=1,spelling=queued:QUEUED|completed:succeed,errors=502|503]")
    assert [get(emu, video_id).status_code for _ in range(2)] == [502, 503]
    assert [a["status"] for a in poll(emu, video_id)] == ["QUEUED", "succeed"]
    other = created_id(emu)
    assert get(emu, other).status_code == 200  # The job's errors were its own.


def test_a_marker_post_failure_hits_the_first_create_with_that_prompt_only(emu: VeoEmulator) -> None:
    prompt = "A lighthouse [emu:post_failure=503]"
    assert create(emu, prompt).status_code == 503
    assert create(emu, prompt).status_code == 200
    assert create(emu, prompt.replace("lighthouse", "harbour")).status_code == 503


@pytest.mark.parametrize(
    "marker", ["[emu:nonsense=1]", "[emu:polls]", "[emu:polls=many]", "[emu:outcome=maybe]", "[emu:polls=1"]
)
def test_a_bad_marker_is_400(emu: VeoEmulator, marker: str) -> None:
    response = create(emu, f"A kite {marker}")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_emulator_marker"
    assert emu.jobs == {}


#: A value different from the default for each type of ``Scenario`` field, and for the fields whose
#: values are constrained. A new field of a new type fails here until markers can set it.
MARKER_VALUES_BY_TYPE: dict[str, Any] = {
    "int": 3,
    "float": 0.5,
    "str": "upstream_error, retry%later]",
    "bool": True,
    "int | None": 4096,
    "float | None": 1.5,
    "str | None": "veo3.1:odd,id]",
    "str | int | None": 503,
    "list[int]": [502, 503],
    "dict[str, str] | None": {"completed": "SUCCESS", "in_progress": "IN_PROGRESS"},
}
MARKER_VALUES_BY_FIELD: dict[str, Any] = {
    "outcome": "failed",
    "broken_polls": ["nested", "malformed", "not_utf8"],
    "model_unavailable": "retired",
}


def marker_text(value: Any) -> str:
    """A value as a marker writes it: ``|`` between items, ``:`` in pairs, special characters encoded."""
    if isinstance(value, list):
        text = "|".join(str(item) for item in value)
    elif isinstance(value, dict):
        text = "|".join(f"{key}:{item}" for key, item in value.items())
    else:
        text = str(value)
    return text.replace("%", "%25").replace(",", "%2C").replace("]", "%5D")


@pytest.mark.parametrize("name", [f.name for f in fields(Scenario)])
def test_every_scenario_field_can_be_set_from_a_marker(name: str) -> None:
    annotation = {f.name: str(f.type) for f in fields(Scenario)}[name]
    value = MARKER_VALUES_BY_FIELD.get(name, MARKER_VALUES_BY_TYPE.get(annotation))
    assert value is not None, f"no marker test value for {name}: {annotation}"
    assert value != getattr(Scenario(), name)
    overrides = parse_marker(f"A kite [emu:{name}={marker_text(value)}] in the wind")
    assert overrides == {name: value}
    assert getattr(replace(Scenario(), **overrides), name) == value


def test_a_video_id_marker_hands_out_that_id(emu: VeoEmulator) -> None:
    video_id = created_id(emu, "A kite [emu:video_id=veo3.1:chosen-id%2C1,polls=0]")
    assert video_id == "veo3.1:chosen-id,1"
    assert get(emu, video_id).json()["status"] == "completed"


def test_the_emulator_model_table_agrees_with_the_provider() -> None:
    """The emulator keeps its own table so that it checks the provider instead of echoing it."""
    assert set(MODELS) == set(api.MODELS)
    for name, spec in api.MODELS.items():
        emulated = MODELS[name]
        assert (emulated.seconds, emulated.sizes, emulated.max_references, emulated.fixed_seconds) == (
            spec.seconds,
            spec.sizes,
            spec.max_references,
            spec.fixed_seconds,
        ), name
    assert UNKNOWN_MODEL_MAX_REFERENCES == api.UNKNOWN_MODEL_MAX_REFERENCES
    assert MAX_REFERENCE_BYTES == api.MAX_REFERENCE_BYTES


# --------------------------------------------------------------------------------------------
# Recording, lifecycle, CLI, fixture
# --------------------------------------------------------------------------------------------


def test_form_fields_and_file_parts_are_recorded_in_order(emu: VeoEmulator) -> None:
    references = [("first.png", PNG, "image/png"), ("last.jpg", JPEG, "image/jpeg")]
    create(emu, model="veo3.1", seconds="8", size="1920x1080", references=references)
    create(emu, model="veo3-pro", references=[(None, "https://example.com/a.png")])
    first, second = emu.posts
    assert first.method == "POST" and first.path == "/v1/videos" and first.status == 200
    assert first.headers["authorization"] == "Bearer test-key"
    assert first.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert first.form == [
        ("model", "veo3.1"),
        ("prompt", "A paper kite floats above a field."),
        ("seconds", "8"),
        ("size", "1920x1080"),
    ]
    assert [(f.name, f.filename, f.content_type, f.size, f.sha256) for f in first.files] == [
        ("input_reference", "first.png", "image/png", len(PNG), hashlib.sha256(PNG).hexdigest()),
        ("input_reference", "last.jpg", "image/jpeg", len(JPEG), hashlib.sha256(JPEG).hexdigest()),
    ]
    assert second.form[-1] == ("input_reference", "https://example.com/a.png") and second.files == []


def raw_get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer test-key\r\n\r\n".encode()


def test_stop_closes_idle_keep_alive_connections() -> None:
    emu = VeoEmulator().start()
    url = emu.url
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(raw_get("/v1/videos/x", host))
        response = http.client.HTTPResponse(client)
        response.begin()
        assert response.status == 404 and b"task_not_exist" in response.read()
        started = time.monotonic()
        emu.stop()
        assert client.recv(65536) == b""
        assert time.monotonic() - started < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v1/videos/x", timeout=2)
    with pytest.raises(RuntimeError):
        emu.url  # noqa: B018 - the property raises once stopped


def complete(response: bytes) -> bool:
    """Whether a raw HTTP response holds its whole body, by its Content-Length."""
    head, separator, body = response.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return bool(separator and length and len(body) >= int(length[1]))


def test_a_thousand_concurrent_keep_alive_clients_are_served(emu: VeoEmulator) -> None:
    video_id = created_id(emu)
    host, port = emu.url.removeprefix("http://").split(":")
    request = raw_get(api.video_path(video_id), host)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        selector = stack.enter_context(selectors.DefaultSelector())
        clients = []
        for _ in range(1000):
            clients.append(stack.enter_context(socket.create_connection((host, int(port)), timeout=3)))
            # A short listen backlog drops SYNs here: connecting then stalls a second at a time.
            assert time.monotonic() - started < 5
        for client in clients:
            client.sendall(request)
            selector.register(client, selectors.EVENT_READ)
        answers = dict.fromkeys(clients, b"")
        deadline = time.monotonic() + 10
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                answers[client] += client.recv(65536)
                if complete(answers[client]):
                    selector.unregister(client)
        assert all(answer.startswith(b"HTTP/1.1 200") and complete(answer) for answer in answers.values())
        assert time.monotonic() - started < 10
        clients[0].sendall(request)  # Still open for a second request.
        assert clients[0].recv(65536).startswith(b"HTTP/1.1 200")
    assert emu.jobs[video_id].polls == 1001


def test_the_fixture_points_the_default_connection_at_the_emulator(veo_emulator: VeoEmulator) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_VEO_DEFAULT"])
    assert connection == {"conn_type": "veo", "host": veo_emulator.url, "password": "test-key"}
    assert veo_emulator.env("other") == {
        "AIRFLOW_CONN_OTHER": veo_emulator.connection_json(),
        "AIRFLOW__VEO__MIN_POLL_INTERVAL": "0.01",
    }
    assert (
        veo_emulator.connection_uri() == f"veo://http://:test-key@{veo_emulator.url.removeprefix('http://')}"
    )


def test_the_cli_prints_the_connection_and_serves() -> None:
    command = [sys.executable, "-m", "airflow_provider_veo.testing.emulator", "--port", "0", "--api-key", "k"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("Veo emulator: API http://127.0.0.1:")
            line = process.stdout.readline()
            assert line.startswith("export AIRFLOW_CONN_VEO_DEFAULT='")
            connection = json.loads(line.strip().split("=", 1)[1].strip("'"))
            assert connection["password"] == "k"
            response = requests.post(
                connection["host"] + "/v1/videos",
                headers={"Authorization": "Bearer k"},
                files={"prompt": (None, "from the CLI")},
                timeout=10,
            )
            assert response.status_code == 200 and response.json()["model"] == "veo3.1"
        finally:
            process.terminate()
