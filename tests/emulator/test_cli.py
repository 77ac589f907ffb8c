"""The emulator from a shell: ``python -m airflow_provider_veo.testing.emulator`` as a subprocess on
127.0.0.1, with ``--record FILE`` (JSON lines) and ``--verbose`` (a line per request), and its help."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_veo import api
from airflow_provider_veo.testing import RecordedRequest, Scenario, VeoEmulator
from airflow_provider_veo.testing.emulator.records import JsonLinesFile, describe

from .client import ROOT

COMMAND = [sys.executable, "-m", "airflow_provider_veo.testing.emulator"]
PROMPT = "A paper kite floats above a field, its long tail curling in the wind over the grass."


class Lines:
    """The emulator's standard output, line by line, read on a thread so a test fails rather than hangs."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self._lines.put(line) for line in stream], daemon=True).start()

    def next(self, timeout: float = 30) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the emulator printed nothing for {timeout} s") from None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Lines, dict[str, str], Path]]:
    """The emulator in a subprocess with --record and --verbose; its connection and record file."""
    record = tmp_path / "requests.jsonl"
    command = [*COMMAND, "--port", "0", "--api-key", "sk-shell", "--polls", "1", "--record", str(record)]
    with subprocess.Popen([*command, "--verbose"], stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            lines = Lines(process.stdout)
            assert lines.next().startswith("Veo emulator: API http://127.0.0.1:")
            line = lines.next()
            assert line.startswith("export AIRFLOW_CONN_VEO_DEFAULT='")
            connection = json.loads(line.strip().split("=", 1)[1].strip("'"))
            assert lines.next() == f"Recording every request to {record.resolve()}\n"
            yield process, lines, connection, record
        finally:
            if process.poll() is None:
                process.kill()


def test_record_and_verbose_show_every_request_as_it_is_answered(
    served: tuple[subprocess.Popen[str], Lines, dict[str, str], Path],
) -> None:
    process, output, connection, record = served
    auth = {"Authorization": "Bearer sk-shell"}
    lines: list[str] = []

    def answered(response: requests.Response) -> requests.Response:
        """The line is printed once the answer is sent: wait for it, so lines from the api and cdn
        listeners (different threads) are read in the order the requests were made."""
        lines.append(output.next().rstrip("\n"))
        return response

    created = answered(
        requests.post(
            connection["host"] + "/v1/videos",
            headers=auth,
            files=[("model", (None, "veo3.1-fast")), ("prompt", (None, PROMPT)), ("seconds", (None, "6"))],
            timeout=10,
        )
    )
    video_id = created.json()["id"]
    job_url = connection["host"] + api.video_path(video_id)
    statuses = [answered(requests.get(job_url, headers=auth, timeout=10)).status_code for _ in range(2)]
    assert answered(requests.get(job_url, timeout=10)).status_code == 401
    video_url = answered(requests.get(job_url, headers=auth, timeout=10)).json()["video_url"]
    assert answered(requests.get(video_url, timeout=10)).content.startswith(b"\x00\x00\x00")

    # --verbose: a line per request, and for the create its model, seconds and prompt start.
    path = api.video_path(video_id)
    assert [line.split(" ", 1)[1] for line in lines[1:]] == [
        f"api GET {path} 200",
        f"api GET {path} 200",
        f"api GET {path} 401",
        f"api GET {path} 200",
        f"cdn GET {urlsplit(video_url).path} 200",
    ]
    assert lines[0].split(" ", 1)[1] == (
        'api POST /v1/videos 200 model=veo3.1-fast seconds=6 prompt="A paper kite floats above a field, its '
        'long tail curling in…"'
    )
    assert all(len(line.split(" ", 1)[0]) == len("13:45:02") for line in lines)

    # --record: the same requests, written and flushed while the emulator still runs.
    written = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r["listener"], r["method"], r["status"]) for r in written] == [
        ("api", "POST", 200),
        *[("api", "GET", status) for status in statuses],
        ("api", "GET", 401),
        ("api", "GET", 200),
        ("cdn", "GET", 200),
    ]
    assert all(set(r) == {f.name for f in fields(RecordedRequest)} for r in written)
    assert written[0]["form"] == [["model", "veo3.1-fast"], ["prompt", PROMPT], ["seconds", "6"]]
    assert written[0]["files"] == [] and written[0]["path"] == "/v1/videos"
    assert written[0]["headers"]["authorization"] == "Bearer sk-shell"
    assert "authorization" not in written[3]["headers"]
    assert all(abs(r["at"] - time.time()) < 120 for r in written)

    # SIGTERM stops it as Ctrl-C does: listeners closed, the file complete.
    process.send_signal(signal.SIGTERM)
    assert output.next() == "Stopping.\n"
    assert process.wait(timeout=30) == 0
    assert len(record.read_text().splitlines()) == 6


def test_a_dropped_connection_is_recorded_with_no_status(tmp_path: Path) -> None:
    record = JsonLinesFile(tmp_path / "requests.jsonl")
    seen: list[RecordedRequest] = []
    with VeoEmulator(scenario=Scenario(reset_gets=1)) as emu:
        emu.on_request(record)
        emu.on_request(seen.append)
        with pytest.raises(requests.ConnectionError):
            requests.get(
                f"{emu.url}/v1/videos/unknown", headers={"Authorization": "Bearer test-key"}, timeout=10
            )
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    record.close()
    assert [(r.method, r.status) for r in seen] == [("GET", None)]
    assert describe(seen[0]).endswith(" api GET /v1/videos/unknown dropped")
    (line,) = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert json.loads(line)["status"] is None
    record(seen[0])  # a request finishing after close() is not written, nor an error
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 1


def test_help_says_what_each_knob_does() -> None:
    result = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, cwd=ROOT, check=True)
    text = " ".join(result.stdout.split())
    for option, words in {
        "--host": "address both listeners bind to",
        "--port": "0 picks a free one",
        "--cdn-port": "video_url",
        "--api-key": "the only key accepted",
        "--server": "as the gateway CometAPI really runs",
        "--id-style": "shape of the video ids",
        "--polls": "before it is completed",
        "--seconds-until-done": "seconds after it was created",
        "--outcome": "how every job ends",
        "--record": "as JSON lines",
        "--verbose": "one line per request",
    }.items():
        assert option in text and words in text, option
    assert "[emu:outcome=failed]" in text  # the prompt markers, for steering a single job
