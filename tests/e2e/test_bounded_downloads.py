"""Downloads are bounded: a trickling CDN, a huge or missing Content-Length, a disk without room.

Each case is a DAG run (create → sensor → download, ``dag.test()``) against the emulator, with the
connection's ``download_timeout`` or ``max_download_bytes`` set, and asserts the download task's
state, the POSTs (one: the job is paid for once), what is left at the destination (nothing), and the
log: the line that marks the start of the download, and the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import RunResult, run_dag

from . import reliability
from .conftest import dag_named
from .faults import assert_nothing_left, use_connection

MIB = 1024 * 1024
VIA = "DAG run (create → sensor → download)"

CASES: list[str] = [
    "download: the CDN trickles 1 byte/s (download_timeout 3 s)",
    "download: Content-Length of 10 TB (above max_download_bytes)",
    "download: no Content-Length, body above max_download_bytes",
    "download: Content-Length above the free disk space",
]
TABLE = reliability.section(
    "Bounded downloads",
    "the emulator's default profile, with the connection's `download_timeout` or `max_download_bytes` set",
    CASES,
)


@pytest.fixture
def emu(metadata_db: None) -> Iterator[VeoEmulator]:
    with VeoEmulator() as emulator:
        yield emulator


def run(
    emu: VeoEmulator, out: Path, monkeypatch: pytest.MonkeyPatch, scenario: Scenario, **extra: object
) -> RunResult:
    """The create → sensor → download DAG on a job shaped by ``scenario``, the connection's extra set."""
    use_connection(monkeypatch, emu, **extra)
    emu.queue_scenario(scenario)
    return run_dag(dag_named("veo_e2e_t2v_poke"), run_conf={"destination": f"{out}/"})


def assert_download_failed(result: RunResult, emu: VeoEmulator) -> str:
    """Created and waited for once; the download task failed on its only try; returns the video id."""
    assert result.task("create_video").state == "success"
    assert result.task("wait_for_video").state == "success"
    download = result.task("download_video")
    assert (download.state, download.try_number) == ("failed", 1)
    assert len(emu.posts) == 1 and len(emu.jobs) == 1
    return next(iter(emu.jobs))


def start_line(log: str, video_id: str) -> str:
    """The line that marks the start of the download, which names the video and where it comes from."""
    [line] = [line for line in log.splitlines() if f"Downloading video {video_id} from " in line]
    return line


def cdn_fetches(emu: VeoEmulator) -> int:
    return sum(1 for r in emu.requests if r.listener == "cdn")


def test_a_trickling_cdn_ends_within_the_download_timeout(
    emu: VeoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # One byte a second: each read gets a byte well within the 60 s read timeout, so only the
    # download's own deadline can end it.
    scenario = Scenario(polls_until_done=0, download_bytes_per_second=1)
    result = run(emu, out, monkeypatch, scenario, download_timeout=3)
    video_id = assert_download_failed(result, emu)
    log = capfd.readouterr().out
    assert "did not finish within download_timeout (3 s)" in log
    assert "VeoDownloadError" in log  # retryable: a try with a healthy CDN may succeed
    assert f"{emu.cdn_url}/files/" in start_line(log, video_id)
    assert cdn_fetches(emu) == 1  # the deadline covers the attempts: none after it
    assert emu.api_key not in log
    left = assert_nothing_left(out)
    TABLE.record(
        CASES[0], VIA, "download task fails, retryable: “did not finish within download_timeout”", 1, 1, left
    )


def test_a_huge_content_length_is_refused_at_once(
    emu: VeoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    result = run(emu, out, monkeypatch, Scenario(polls_until_done=0, announced_bytes=10**13))
    video_id = assert_download_failed(result, emu)
    log = capfd.readouterr().out
    assert "announces 10000000000000 bytes (Content-Length)" in log
    assert "max_download_bytes (4294967296)" in log
    assert "AirflowFailException" in log  # another try would meet the same file
    start_line(log, video_id)
    assert cdn_fetches(emu) == 1
    left = assert_nothing_left(out)
    TABLE.record(
        CASES[1], VIA, "download task fails at once: “max_download_bytes”, no second fetch", 1, 1, left
    )


def test_a_body_without_content_length_is_cut_at_the_cap(
    emu: VeoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    scenario = Scenario(polls_until_done=0, video_bytes=3 * MIB, chunked_download=True)
    result = run(emu, out, monkeypatch, scenario, max_download_bytes=2 * MIB)
    video_id = assert_download_failed(result, emu)
    log = capfd.readouterr().out
    assert f"goes on past {2 * MIB} bytes" in log
    start_line(log, video_id)
    assert cdn_fetches(emu) == 1
    left = assert_nothing_left(out)
    TABLE.record(
        CASES[2], VIA, "download task fails at once: cut at the cap, “max_download_bytes”", 1, 1, left
    )


def test_a_video_larger_than_the_free_space_is_refused_before_writing(
    emu: VeoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    announced = 2**49  # 512 TiB: more than any disk this runs on has free, under the cap set below
    scenario = Scenario(polls_until_done=0, announced_bytes=announced)
    result = run(emu, out, monkeypatch, scenario, max_download_bytes=2**50)
    video_id = assert_download_failed(result, emu)
    log = capfd.readouterr().out
    assert f"bytes free, the video announces {announced}" in log
    assert "nothing was left there" in log
    start_line(log, video_id)
    left = assert_nothing_left(out)
    TABLE.record(
        CASES[3], VIA, "download task fails at once: “bytes free, the video announces …”", 1, 1, left
    )
