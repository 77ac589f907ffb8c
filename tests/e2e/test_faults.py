"""Fault injection against the emulator: what each failure of the API, the CDN or the disk costs.

Every case asserts the outcome (success, or a failure whose message says what happened), how many
create requests (POSTs, the billed call) reached the emulator and how many jobs it created, and
what is left at the destination: the verified MP4 or nothing, never a partial file or a ``.part``.

Most cases call the operators directly, the way the worker does: ``execute()``, and for the
deferrable mode the trigger's real ``run()`` on an event loop, then the resume method with its
event, as ``dag.test()`` does. Full DAG runs are kept for the cases where task states and retries
are the point. Each case records its row for ``docs/RELIABILITY.md``, which
``scripts/write_reliability_doc.py`` renders from a run of the fault suites.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.api import VeoDownloadError
from airflow_provider_veo.destinations import StagedFile
from airflow_provider_veo.operators.veo import (
    VeoCreateVideoOperator,
    VeoDownloadVideoOperator,
)
from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from . import reliability
from .conftest import dag_named
from .faults import (
    MAY_HAVE,
    MODES,
    NOT_RESENT,
    FakeTI,
    Outcome,
    assert_nothing_left,
    assert_video,
    failure,
    generate,
    job_gets,
    leftovers,
    use_connection,
    via,
)

STATUSES_5XX = (500, 502, 503, 504, 524)
STILL_RUNNING = "the job may still be running"
RETRY_AFTER = 0.25
SLOW = {"slow_first_n": 1, "slow_seconds": 1.0}
SHORT_TIMEOUT = 0.5  # the connection's `timeout` extra in the slow-answer cases

#: Every row of the table, in its order. A case missing here cannot record; a case not run leaves
#: the table unwritten.
CASES: list[str] = [
    "POST: connection reset after the job was created",
    "POST: connection reset before the job was created",
    *[f"POST: HTTP {status}, the API's JSON error" for status in STATUSES_5XX],
    "POST: 429 three times, with Retry-After",
    "POST: answer slower than the request timeout",
    *[f"GET, {mode}: connection reset twice" for mode in MODES],
    *[f"GET, {mode}: HTTP {status} three times" for mode in MODES for status in STATUSES_5XX],
    *[f"GET, {mode}: 500, 502, 503, 504, 524 in a row (more than the retries)" for mode in MODES],
    *[f"GET, {mode}: 429 three times, with Retry-After" for mode in MODES],
    *[f"GET, {mode}: answer slower than the request timeout" for mode in MODES],
    "download: truncated body",
    "download: corrupt body (no ftyp box)",
    "download: video_url expired once",
    "download: video_url expired on every fetch",
    "destination: parent is a file (generate)",
    "destination: parent is a file (download task)",
    "destination: disk full",
    *[f"timeout: job stuck in queued, sensor ({mode})" for mode in MODES],
    *[f"timeout: job stuck in queued, generate ({mode})" for mode in MODES],
]


TABLE = reliability.section(
    "The documented API",
    "the emulator's default profile (`VeoEmulator()`), which answers as CometAPI's docs describe",
    CASES,
)
record = TABLE.record


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def emu(metadata_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    with VeoEmulator() as emulator:
        use_connection(monkeypatch, emulator)
        yield emulator


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The destination folder; created by the download itself."""
    return tmp_path / "out"


def assert_retry_after_honoured(requests: list[Any], expected_429: int) -> None:
    """Each request answered 429 is followed by the next one no sooner than ``Retry-After``."""
    limited = [i for i, r in enumerate(requests) if r.status == 429]
    assert len(limited) == expected_429, [r.status for r in requests]
    for i in limited:
        assert requests[i + 1].at - requests[i].at >= RETRY_AFTER - 0.01, (requests[i].at, requests[i + 1].at)


def let_slow_answers_finish(emu: VeoEmulator, seconds: float = 60.0) -> None:
    """Wait until the emulator has answered every API request, so none outlives the test's emulator."""
    deadline = time.monotonic() + seconds
    while any(r.status is None for r in emu.requests if r.listener == "api"):
        assert time.monotonic() < deadline, "the emulator is still answering"
        time.sleep(0.05)


def wait_for_jobs(emu: VeoEmulator, count: int, seconds: float = 60.0) -> int:
    """Jobs the emulator made, once it has finished answering a request the client gave up on."""
    deadline = time.monotonic() + seconds
    while len(emu.jobs) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(emu.jobs)


# --------------------------------------------------------------------------------------------
# The create call (POST): never sent twice when the server may have taken it
# --------------------------------------------------------------------------------------------


def test_post_reset_after_create_fails_the_task_without_resending(
    emu: VeoEmulator, out: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.scenario = Scenario(post_failure="reset_after_create")
    result = run_dag(dag_named("veo_e2e_t2v_deferrable"), run_conf={"destination": f"{out}/"})
    create = result.task("create_video")
    assert (create.state, create.try_number) == ("failed", 1)  # retries=2, yet never retried
    assert result.task("wait_for_video").state == result.task("download_video").state == "upstream_failed"
    log = capfd.readouterr().out
    assert MAY_HAVE in log and NOT_RESENT in log and "console's task log" in log
    assert len(emu.posts) == 1
    assert len(emu.jobs) == 1  # the job exists and is billed: exactly why it is not sent again
    record(
        "POST: connection reset after the job was created",
        "DAG run (create → sensor → download)",
        f"create task fails at once (try 1 of 3): “{MAY_HAVE}”, “{NOT_RESENT}”",
        1,
        1,
        assert_nothing_left(out),
    )


def test_post_reset_before_create_is_not_resent(emu: VeoEmulator, out: Path) -> None:
    emu.scenario = Scenario(post_failure="reset_before_create")
    outcome = generate(out)
    text = failure(outcome, MAY_HAVE, NOT_RESENT, final=True)
    assert [p.status for p in emu.posts] == [None]  # dropped without an answer
    assert emu.jobs == {}
    record(
        "POST: connection reset before the job was created", via("poke"), text, 1, 0, assert_nothing_left(out)
    )


@pytest.mark.parametrize("status", STATUSES_5XX)
def test_post_json_5xx_is_retried(emu: VeoEmulator, out: Path, status: int) -> None:
    # A JSON error is the API's own answer: it created nothing (the gateway refunds on every error).
    emu.scenario = Scenario(post_failure=status)
    outcome = generate(out)
    left = assert_video(outcome, emu, out)
    assert [p.status for p in emu.posts] == [status, 200]
    assert len(emu.jobs) == 1
    record(
        f"POST: HTTP {status}, the API's JSON error",
        via("poke"),
        "success: the POST is retried with backoff (the API's own error created nothing)",
        f"2 ({status}, then created)",
        1,
        left,
    )


def test_post_429_storm_is_retried_after_retry_after(emu: VeoEmulator, out: Path) -> None:
    # Emulator-wide, the rate limit counts every API request: the first three are the POSTs.
    emu.scenario = Scenario(rate_limit=3, retry_after=RETRY_AFTER)
    outcome = generate(out)
    left = assert_video(outcome, emu, out)
    assert [p.status for p in emu.posts] == [429, 429, 429, 200]
    assert_retry_after_honoured(emu.posts, 3)
    assert len(emu.jobs) == 1
    record(
        "POST: 429 three times, with Retry-After",
        via("poke"),
        "success: the POST is retried (a 429 proves it was not taken), "
        f"each after Retry-After ({RETRY_AFTER} s)",
        "4 (3 answered 429, 1 created)",
        1,
        left,
    )


def test_post_slower_than_timeout_is_not_resent(
    emu: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emu, create_timeout=SHORT_TIMEOUT)
    emu.scenario = Scenario(**SLOW)  # emulator-wide: the first API request is the POST
    outcome = generate(out)
    text = failure(outcome, MAY_HAVE, "ReadTimeout", NOT_RESENT, final=True)
    assert len(emu.posts) == 1
    assert wait_for_jobs(emu, 1) == 1  # the slow server did create it, after the client gave up
    let_slow_answers_finish(emu)
    record(
        "POST: answer slower than the request timeout",
        f"{via('poke')}, `create_timeout` {SHORT_TIMEOUT} s",
        text,
        1,
        "1 (after the client gave up)",
        assert_nothing_left(out),
    )


# --------------------------------------------------------------------------------------------
# Reading the job (GET): retried, in the worker and in the triggerer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_get_connection_resets_are_retried(emu: VeoEmulator, out: Path, mode: str) -> None:
    emu.queue_scenario(Scenario(reset_gets=2))
    outcome = generate(out, mode)
    left = assert_video(outcome, emu, out)
    assert [r.status for r in job_gets(emu)][:3] == [None, None, 200]
    assert len(emu.posts) == 1
    record(f"GET, {mode}: connection reset twice", via(mode), "success: the GET is retried", 1, 1, left)


@pytest.mark.parametrize("status", STATUSES_5XX)
@pytest.mark.parametrize("mode", MODES)
def test_get_5xx_bursts_are_retried(emu: VeoEmulator, out: Path, mode: str, status: int) -> None:
    emu.queue_scenario(Scenario(server_errors=[status] * 3))
    outcome = generate(out, mode)
    left = assert_video(outcome, emu, out)
    assert [r.status for r in job_gets(emu)][:4] == [status, status, status, 200]
    assert len(emu.posts) == 1
    record(
        f"GET, {mode}: HTTP {status} three times",
        via(mode),
        "success: the GET is retried with backoff",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_get_outage_longer_than_the_retries_is_waited_out(emu: VeoEmulator, out: Path, mode: str) -> None:
    # Five failures use up one read's 5 attempts: the wait polls on at its interval until the deadline.
    emu.queue_scenario(Scenario(server_errors=list(STATUSES_5XX)))
    outcome = generate(out, mode)
    left = assert_video(outcome, emu, out)
    assert [r.status for r in job_gets(emu)][:6] == [*STATUSES_5XX, 200]
    assert len(emu.posts) == 1
    record(
        f"GET, {mode}: 500, 502, 503, 504, 524 in a row (more than the retries)",
        via(mode),
        "success: one read gives up, the wait polls on until its deadline",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_get_429_storm_honours_retry_after(emu: VeoEmulator, out: Path, mode: str) -> None:
    emu.queue_scenario(Scenario(rate_limit=3, retry_after=RETRY_AFTER))
    outcome = generate(out, mode)
    left = assert_video(outcome, emu, out)
    assert_retry_after_honoured(job_gets(emu), 3)
    assert len(emu.posts) == 1
    record(
        f"GET, {mode}: 429 three times, with Retry-After",
        via(mode),
        f"success: each retry waits Retry-After ({RETRY_AFTER} s)",
        1,
        1,
        left,
    )


@pytest.mark.parametrize("mode", MODES)
def test_get_slower_than_timeout_is_retried(
    emu: VeoEmulator, out: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emu, timeout=SHORT_TIMEOUT)
    emu.queue_scenario(Scenario(**SLOW))  # the job's first GET answers after 1 s
    outcome = generate(out, mode)
    left = assert_video(outcome, emu, out)
    first, second = job_gets(emu)[:2]
    assert first.path == second.path  # the same read, sent again after the timeout
    assert second.at - first.at >= SHORT_TIMEOUT - 0.01
    assert len(emu.posts) == 1
    let_slow_answers_finish(emu)
    record(
        f"GET, {mode}: answer slower than the request timeout",
        f"{via(mode)}, `timeout` {SHORT_TIMEOUT} s",
        "success: the timed-out GET is retried",
        1,
        1,
        left,
    )


# --------------------------------------------------------------------------------------------
# The download: verified before it is published
# --------------------------------------------------------------------------------------------


def cdn_statuses(emu: VeoEmulator) -> list[int | None]:
    return [r.status for r in emu.requests if r.listener == "cdn"]


def test_truncated_download_leaves_nothing(emu: VeoEmulator, out: Path) -> None:
    emu.queue_scenario(Scenario(truncate_download=True))
    outcome = generate(out)
    # The connection closes before the announced Content-Length: requests reports a broken body.
    size = emu.expected_bytes(next(iter(emu.jobs)))
    text = failure(outcome, "the download broke off", f"of {size} bytes", final=False)
    assert isinstance(outcome.error, VeoDownloadError)
    assert cdn_statuses(emu) == [200, 200, 200]  # three attempts, each with a fresh URL
    assert len(emu.posts) == 1
    record("download: truncated body", via("poke"), text, 1, 1, assert_nothing_left(out))


def test_corrupt_download_leaves_nothing(emu: VeoEmulator, out: Path) -> None:
    emu.queue_scenario(Scenario(corrupt_download=True))
    outcome = generate(out)
    text = failure(
        outcome, "the download is not a whole MP4", "does not start with an 'ftyp' box", final=False
    )
    assert len(emu.posts) == 1
    record("download: corrupt body (no ftyp box)", via("poke"), text, 1, 1, assert_nothing_left(out))


def test_expired_url_is_replaced_by_a_fresh_one(emu: VeoEmulator, out: Path) -> None:
    emu.queue_scenario(Scenario(expired_url_fetches=1))
    outcome = generate(out)
    left = assert_video(outcome, emu, out)
    cdn = [r for r in emu.requests if r.listener == "cdn"]
    assert [r.status for r in cdn] == [403, 200]
    assert cdn[0].path != cdn[1].path  # the job was read again for a fresh URL
    assert all("authorization" not in r.headers for r in cdn)
    assert len(emu.posts) == 1
    record(
        "download: video_url expired once",
        via("poke"),
        "success: the job is read again for a fresh video_url",
        1,
        1,
        left,
    )


def test_url_expired_on_every_fetch_fails_cleanly(emu: VeoEmulator, out: Path) -> None:
    emu.queue_scenario(Scenario(expired_url_fetches=3))
    outcome = generate(out)
    text = failure(outcome, "video_url answered HTTP 403 (expired?)", final=False)
    assert cdn_statuses(emu) == [403, 403, 403]
    assert len(emu.posts) == 1
    record("download: video_url expired on every fetch", via("poke"), text, 1, 1, assert_nothing_left(out))


# --------------------------------------------------------------------------------------------
# The destination
# --------------------------------------------------------------------------------------------


def test_destination_under_a_file_fails_before_paying(emu: VeoEmulator, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a folder")
    outcome = generate(tmp_path, destination=f"{blocker}/videos/")
    text = failure(outcome, "Invalid `destination`", "is a file", final=True)
    assert emu.posts == []
    assert blocker.read_bytes() == b"not a folder" and leftovers(tmp_path) == ["blocker"]
    record("destination: parent is a file (generate)", via("poke"), text, 0, 0, "nothing")


def test_destination_under_a_file_fails_the_download_task(emu: VeoEmulator, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a folder")
    emu.queue_scenario(Scenario(polls_until_done=0))  # completed on the first read
    context: Any = {"ti": FakeTI()}
    video_id = VeoCreateVideoOperator(task_id="create_video", prompt="a fox").execute(context)
    download = VeoDownloadVideoOperator(
        task_id="download_video", video_id=video_id, destination=f"{blocker}/videos/"
    )
    try:
        download.execute(context)
    except Exception as exc:
        outcome = Outcome(None, exc)
    else:
        outcome = Outcome({}, None)
    text = failure(outcome, "Invalid `destination`", "cannot create folder", final=True)
    assert len(emu.posts) == 1
    assert leftovers(tmp_path) == ["blocker"]
    record(
        "destination: parent is a file (download task)",
        "create, then download operator",
        text,
        1,
        1,
        "nothing",
    )


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder on a 64 KiB tmpfs (as root); where mounting is not allowed, writes there fail with ENOSPC."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not mounted:
        enter = StagedFile.__enter__

        class FullDisk:
            def __init__(self, sink: Any) -> None:
                self._sink = sink

            def write(self, data: bytes) -> int:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name: str) -> Any:
                return getattr(self._sink, name)

        monkeypatch.setattr(StagedFile, "__enter__", lambda self: FullDisk(enter(self)))
    try:
        yield folder, "a 64 KiB tmpfs" if mounted else "simulated ENOSPC"
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_full_disk_fails_cleanly(emu: VeoEmulator, full_disk: tuple[Path, str]) -> None:
    folder, how = full_disk
    emu.queue_scenario(Scenario(video_bytes=512 * 1024))
    outcome = generate(folder, destination=f"{folder}/")
    text = failure(outcome, "Invalid `destination`", "No space left on device", final=True)
    assert len(emu.posts) == 1
    record(
        "destination: disk full",
        f"{via('poke')}, {how}",
        text,
        1,
        1,
        assert_nothing_left(folder),
    )


# --------------------------------------------------------------------------------------------
# A job that never finishes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sensor_times_out_on_a_job_stuck_in_queued(
    emu: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.scenario = Scenario(seconds_until_done=3600)  # queued for the first 12 minutes
    result = run_dag(dag_named(f"veo_e2e_timeout_{mode}"), run_conf={"destination": f"{out}/"})
    sensor = result.task("wait_for_video")
    assert (sensor.state, sensor.try_number) == ("failed", 1)  # retries=2, a timeout is final
    assert result.task("download_video").state == "upstream_failed"
    assert STILL_RUNNING in capfd.readouterr().out
    assert [job.status for job in emu.jobs.values()] == ["queued"]
    assert len(emu.posts) == 1
    record(
        f"timeout: job stuck in queued, sensor ({mode})",
        f"DAG run, sensor `timeout=1`, {'deferred' if mode == 'deferrable' else 'poke'}",
        f"sensor fails at once (try 1 of 3): “{STILL_RUNNING}”",
        1,
        1,
        assert_nothing_left(out),
    )


@pytest.mark.parametrize("mode", MODES)
def test_generate_times_out_on_a_job_stuck_in_queued(
    emu: VeoEmulator, out: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.scenario = Scenario(seconds_until_done=3600)
    result = run_dag(
        dag_named(f"veo_fault_generate_timeout_{mode}", "veo_fault_dags.py"),
        run_conf={"destination": f"{out}/"},
    )
    task = result.task("generate_video")
    assert (task.state, task.try_number) == ("failed", 1)
    log = capfd.readouterr().out
    assert "did not finish before the deadline" in log and STILL_RUNNING in log
    assert "VeoTimeoutError" in log
    assert [job.status for job in emu.jobs.values()] == ["queued"]
    assert len(emu.posts) == 1
    record(
        f"timeout: job stuck in queued, generate ({mode})",
        f"DAG run, generate `timeout=1`, {'deferred' if mode == 'deferrable' else 'poke'}",
        f"fails, retryable (VeoTimeoutError): “{STILL_RUNNING}”",
        1,
        1,
        assert_nothing_left(out),
    )
