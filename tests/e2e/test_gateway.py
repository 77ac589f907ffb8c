"""The provider against the gateway CometAPI really runs (new-api), played by the emulator's profile.

Where the gateway answers differently from CometAPI's docs, each case checks that no money is lost
(how many POSTs reached it, how many jobs it made), no wait hangs, and nothing partial is published.
Every case records its row for ``docs/RELIABILITY.md`` (see ``tests/e2e/reliability.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from . import reliability
from .conftest import dag_named
from .faults import (
    MAY_HAVE,
    MODES,
    NOT_RESENT,
    assert_nothing_left,
    assert_video,
    failure,
    generate,
    job_gets,
    use_connection,
    via,
)
from .test_resume import airflow_has_task_state_store

CASES: list[str] = [
    *[f"{mode}: a job from create to download" for mode in MODES],
    "POST: HTTP 500, flat JSON error (do_request_failed)",
    "POST: HTTP 503, envelope (model_not_found)",
    "POST: 429 without Retry-After, twice",
    "POST: an HTML 502 from a proxy in front",
    "POST: 403 insufficient_user_quota",
    "POST: 403 pre_consume_token_quota_failed",
    "POST: 401 Invalid token",
    "POST: the create answers after 2 s, request timeout 0.5 s",
    *[f"GET, {mode}: task_not_exist for the first polls" for mode in MODES],
    *[f"sensor, {mode}: task_not_exist for the first polls" for mode in MODES],
    *[f"resume, {mode}: the retry's job is not visible yet" for mode in MODES],
    *[f"GET, {mode}: task_not_exist past the grace window" for mode in MODES],
    *[f"GET, {mode}: HTTP 200 with only an error, no status" for mode in MODES],
    *[f"GET, {mode}: failed with no error object" for mode in MODES],
    "download: /content cut cleanly mid-file (chunked, no Content-Length)",
    "download: /content answers 502 forever for a completed job",
]
TABLE = reliability.section(
    "The gateway CometAPI runs (new-api)",
    'the emulator\'s new-api profile (`VeoEmulator(server="new-api")`), which answers as the open-source '
    "gateway behind CometAPI does: its three error shapes, `task_not_exist`, `unknown` statuses, a "
    "`video_url` at its own authenticated `/content`, streamed without `Content-Length`",
    CASES,
)
record = TABLE.record

#: The generate operator's ``timeout`` in these cases (see ``faults.generate``): the failures that must
#: end promptly end well inside a third of it.
TIMEOUT = 30


@pytest.fixture
def gateway(metadata_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    with VeoEmulator(server="new-api") as emulator:
        use_connection(monkeypatch, emulator)
        monkeypatch.setenv("VEO_POLL_INTERVAL", "0.2")
        yield emulator


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def content_fetches(emu: VeoEmulator) -> list[dict[str, str]]:
    """The headers of every ``/content`` request."""
    return [r.headers for r in job_gets(emu) if r.path.split("?")[0].endswith("/content")]


# --------------------------------------------------------------------------------------------
# A whole job
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_job_from_create_to_download(
    gateway: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    outcome = generate(out, mode)
    left = assert_video(outcome, gateway, out)
    assert outcome.video is not None
    assert (outcome.video["duration_seconds"], outcome.video["width"], outcome.video["height"]) == (
        4.0,
        1280,
        720,
    )
    [post] = gateway.posts
    assert dict(post.form)["seconds"] == "4"  # never left to the gateway, which would bill 8
    # One model name, the one asked for; the gateway's upstream id (its retrieves say it) on its own.
    assert (outcome.video["model"], outcome.video["upstream_model"]) == (
        "veo3.1-fast",
        "veo-3.1-fast-generate-preview",
    )
    fetches = content_fetches(gateway)
    assert fetches and all(h["authorization"] == f"Bearer {gateway.api_key}" for h in fetches)
    assert not [r for r in gateway.requests if r.listener == "cdn"]
    log = capfd.readouterr().out
    assert log.count("status 'unknown'") == 1, "the gateway's first status is logged once"
    assert "not one this provider knows" not in log
    assert "were asked for" not in log and "was asked for" not in log, "the clip is what was asked"
    record(
        f"{mode}: a job from create to download",
        via(mode),
        "success: `seconds` sent, `unknown` logged once, `video_url` (the gateway's own `/content`) "
        "fetched with the key and verified box by box; duration 4 s and 1280x720 read from the MP4",
        1,
        1,
        left,
    )


# --------------------------------------------------------------------------------------------
# Creating: retry what the gateway's own errors prove harmless, never what may have created a job
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure_name", "status", "case"),
    [
        ("do_request_failed", 500, "POST: HTTP 500, flat JSON error (do_request_failed)"),
        ("model_not_found", 503, "POST: HTTP 503, envelope (model_not_found)"),
    ],
)
def test_a_json_error_on_create_is_retried(
    gateway: VeoEmulator, out: Path, failure_name: str, status: int, case: str
) -> None:
    gateway.scenario = Scenario(post_failure=failure_name)
    outcome = generate(out)
    left = assert_video(outcome, gateway, out)
    assert [p.status for p in gateway.posts] == [status, 200]
    assert len(gateway.jobs) == 1
    record(
        case,
        via("poke"),
        "success: retried with backoff; the gateway refunds and stores nothing on any error",
        f"2 ({status}, then created)",
        1,
        left,
    )


def test_a_429_without_retry_after_backs_off_and_retries(gateway: VeoEmulator, out: Path) -> None:
    gateway.scenario = Scenario(rate_limit=2)  # emulator-wide: the first two API requests are POSTs
    outcome = generate(out)
    left = assert_video(outcome, gateway, out)
    assert [p.status for p in gateway.posts] == [429, 429, 200]
    assert all("retry-after" not in r.headers for r in gateway.posts)
    record(
        "POST: 429 without Retry-After, twice",
        via("poke"),
        "success: retried after the provider's own jittered backoff",
        "3 (2 answered 429, 1 created)",
        1,
        left,
    )


def test_a_proxy_502_on_create_is_never_resent(gateway: VeoEmulator, out: Path) -> None:
    gateway.scenario = Scenario(post_failure="html_502")
    outcome = generate(out, prompt="a heron at dawn")
    text = failure(outcome, MAY_HAVE, "HTTP 502", NOT_RESENT, "task log", "'a heron at dawn'", final=True)
    assert [p.status for p in gateway.posts] == [502]
    assert len(gateway.jobs) == 1  # the gateway behind the proxy went on: exactly why it is not resent
    record(
        "POST: an HTML 502 from a proxy in front",
        via("poke"),
        text,
        1,
        "1 (behind the proxy)",
        assert_nothing_left(out),
    )


@pytest.mark.parametrize(
    ("failure_name", "fragments", "case"),
    [
        ("insufficient_user_quota", ("out of credit", "用户额度不足"), "POST: 403 insufficient_user_quota"),
        (
            "pre_consume_token_quota_failed",
            ("out of credit", "pre_consume_token_quota_failed"),
            "POST: 403 pre_consume_token_quota_failed",
        ),
        (
            "invalid_token",
            ("Invalid token", "invalid, expired, or has used up its own quota"),
            "POST: 401 Invalid token",
        ),
    ],
)
def test_refusals_on_create_fail_at_once_saying_why(
    gateway: VeoEmulator, out: Path, failure_name: str, fragments: tuple[str, ...], case: str
) -> None:
    gateway.scenario = Scenario(post_failure=failure_name)
    outcome = generate(out)
    text = failure(outcome, *fragments, "request id", final=True)
    assert len(gateway.posts) == 1 and gateway.jobs == {}
    record(case, via("poke"), text, 1, 0, assert_nothing_left(out))


def test_a_slow_create_outlasts_the_request_timeout(
    gateway: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, gateway, timeout=0.5)  # reads; the create has its own, 300 s by default
    gateway.queue_scenario(Scenario(create_delay=2.0))
    started = time.monotonic()
    outcome = generate(out)
    left = assert_video(outcome, gateway, out)
    assert time.monotonic() - started >= 2.0
    assert len(gateway.posts) == 1
    record(
        "POST: the create answers after 2 s, request timeout 0.5 s",
        f"{via('poke')}, `timeout` 0.5 s",
        "success: the create waits on `create_timeout` (300 s by default), not the read timeout",
        1,
        1,
        left,
    )


# --------------------------------------------------------------------------------------------
# Waiting: a job not stored yet, a job never stored, jobs that fail without a status or a reason
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_task_not_exist_right_after_create_is_waited_out(gateway: VeoEmulator, out: Path, mode: str) -> None:
    gateway.queue_scenario(Scenario(not_visible_polls=3))
    outcome = generate(out, mode)
    left = assert_video(outcome, gateway, out)
    assert [r.status for r in job_gets(gateway)][:4] == [400, 400, 400, 200]
    assert len(gateway.posts) == 1
    record(
        f"GET, {mode}: task_not_exist for the first polls",
        via(mode),
        "success: “not found” within 60 s of the create means “not stored yet”; polled on",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_the_sensor_waits_out_task_not_exist(gateway: VeoEmulator, tmp_path: Path, mode: str) -> None:
    gateway.queue_scenario(Scenario(not_visible_polls=3))
    result = run_dag(dag_named(f"veo_e2e_t2v_{mode}"), run_conf={"destination": f"{tmp_path}/"})
    assert result.state == "success"
    assert [result.task(t).try_number for t in ("create_video", "wait_for_video")] == [1, 1]
    assert [r.status for r in job_gets(gateway)][:4] == [400, 400, 400, 200]
    video = result.task("download_video").xcom["return_value"]
    assert video["sha256"] == gateway.expected_sha256(video["video_id"])
    assert [p.name for p in tmp_path.iterdir()] == [Path(video["uri"]).name]
    assert len(gateway.posts) == 1
    record(
        f"sensor, {mode}: task_not_exist for the first polls",
        "DAG run (create → sensor → download)",
        "success, first try of each task: the sensor polls on through the grace window",
        1,
        1,
        "the verified MP4",
    )


@pytest.mark.skipif(not airflow_has_task_state_store(), reason="durable resume needs Airflow 3.3+")
@pytest.mark.parametrize("mode", MODES)
def test_a_retry_resumes_a_job_not_visible_yet(
    gateway: VeoEmulator, tmp_path: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # Try 1 (a 2 s deadline, a poll every 0.5 s) sees only "not found" and times out; the retry's
    # first read is still "not found", seconds after the create: it waits for that job, not a new one.
    gateway.queue_scenario(Scenario(not_visible_polls=6, polls_until_done=0))
    result = run_dag(
        dag_named(f"veo_gateway_resume_{mode}", "veo_gateway_dags.py"), {"destination": f"{tmp_path}/"}
    )
    task = result.task("generate_video")
    assert (result.state, task.state) == ("success", "success")
    assert task.try_number >= 2
    assert len(gateway.posts) == 1
    assert "submitted by an earlier try (status 'unknown')" in capfd.readouterr().out
    video = task.xcom["return_value"]
    assert video["sha256"] == gateway.expected_sha256(video["video_id"])
    assert [p.name for p in tmp_path.iterdir()] == [Path(video["uri"]).name]
    record(
        f"resume, {mode}: the retry's job is not visible yet",
        "DAG run (generate, `timeout` 2 s, `retries` 2)",
        "success on a retry that resumes the unseen job (Airflow 3.3+)",
        1,
        1,
        "the verified MP4",
    )


@pytest.mark.parametrize("mode", MODES)
def test_task_not_exist_past_the_grace_window_fails_naming_the_id(
    gateway: VeoEmulator, out: Path, mode: str
) -> None:
    gateway.queue_scenario(Scenario(not_visible_polls=1000))
    started = time.monotonic()
    outcome = generate(out, mode, visibility_grace=1.0)
    [job_id] = gateway.jobs
    text = failure(outcome, f"does not know video {job_id}", "grace window", final=True)
    assert time.monotonic() - started < TIMEOUT / 3
    assert len(gateway.posts) == 1
    record(
        f"GET, {mode}: task_not_exist past the grace window",
        f"{via(mode)}, `visibility_grace` 1 s",
        text,
        1,
        1,
        assert_nothing_left(out),
    )


@pytest.mark.parametrize("mode", MODES)
def test_an_error_only_job_body_fails_promptly(gateway: VeoEmulator, out: Path, mode: str) -> None:
    gateway.queue_scenario(
        Scenario(outcome="failed", error_only_body=True, error_message="upstream refused the prompt")
    )
    started = time.monotonic()
    outcome = generate(out, mode)
    text = failure(outcome, "ended with status 'failed'", "upstream refused the prompt", final=True)
    assert time.monotonic() - started < TIMEOUT / 3, "ended by the job's error, not by the timeout"
    assert len(gateway.posts) == 1
    record(
        f"GET, {mode}: HTTP 200 with only an error, no status",
        via(mode),
        text,
        1,
        1,
        assert_nothing_left(out),
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_job_without_an_error_says_what_it_means(gateway: VeoEmulator, out: Path, mode: str) -> None:
    gateway.queue_scenario(Scenario(outcome="failed"))
    outcome = generate(out, mode)
    text = failure(outcome, "ended with status 'failed'", "gave no reason", "safety filters", final=True)
    assert len(gateway.posts) == 1
    record(f"GET, {mode}: failed with no error object", via(mode), text, 1, 1, assert_nothing_left(out))


# --------------------------------------------------------------------------------------------
# Downloading from the gateway's /content proxy
# --------------------------------------------------------------------------------------------


def test_a_content_body_cut_cleanly_is_never_published(gateway: VeoEmulator, out: Path) -> None:
    gateway.queue_scenario(Scenario(content_cut_at=10_000))
    outcome = generate(out)
    text = failure(outcome, "not a whole MP4", "ends inside its 'mdat' box", final=False)
    fetches = content_fetches(gateway)
    assert len(fetches) == 3, "retried like a truncated download"
    assert "content-length" not in str(fetches)
    assert len(gateway.posts) == 1
    record(
        "download: /content cut cleanly mid-file (chunked, no Content-Length)",
        via("poke"),
        text,
        1,
        1,
        assert_nothing_left(out),
    )


def test_content_that_never_comes_fails_without_an_airflow_retry(gateway: VeoEmulator, out: Path) -> None:
    gateway.queue_scenario(Scenario(content_unavailable=True))
    outcome = generate(out)
    text = failure(
        outcome, "cannot deliver it", "Failed to resolve Gemini video URL", "request id", final=True
    )
    assert len(content_fetches(gateway)) == 5  # the GET retried; a new read of the job would not help
    assert len(gateway.posts) == 1
    record(
        "download: /content answers 502 forever for a completed job",
        via("poke"),
        text,
        1,
        "1 (completed, billed)",
        assert_nothing_left(out),
    )


def test_the_manifest_names_the_model_asked_for_and_the_upstream_one_apart(
    gateway: VeoEmulator, out: Path
) -> None:
    outcome = generate(out, write_manifest=True)
    assert outcome.error is None and outcome.video is not None
    manifest = json.loads(Path(outcome.video["uri"]).with_suffix(".json").read_text())
    assert (manifest["model"], manifest["upstream_model"]) == ("veo3.1-fast", "veo-3.1-fast-generate-preview")
    assert outcome.video["model"] == manifest["model"] == outcome.video["usage"]["model"]
