"""The on-call commands for real: jobs created with the hook against the emulator, then
``python -m airflow_provider_veo status/download`` run as a subprocess, its connection resolved the
Airflow way (``AIRFLOW_CONN_VEO_DEFAULT``, or the metadata DB)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.testing import Scenario, VeoEmulator

ROOT = Path(__file__).resolve().parents[2]
#: A key that can be told apart from every other string in the output.
KEY = f"sk-cli-{secrets.token_urlsafe(18)}"


@pytest.fixture
def emu(metadata_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    """An emulator whose jobs are done at their first read, that ``veo_default`` points at."""
    with VeoEmulator(KEY, scenario=Scenario(polls_until_done=0)) as emulator:
        for name, value in emulator.env().items():
            monkeypatch.setenv(name, value)
        yield emulator


def submit(prompt: str) -> str:
    return VeoHook().submit(api.build_request(prompt=prompt)).video_id


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m airflow_provider_veo ARGS`` in this environment; the key must appear nowhere."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_veo", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def fields_of(output: str) -> dict[str, str]:
    """The ``name: value`` lines of the text output."""
    pairs = (line.split(": ", 1) for line in output.splitlines() if ": " in line)
    return {name: value.strip() for name, value in pairs}


def test_status_then_download_by_id(emu: VeoEmulator, tmp_path: Path) -> None:
    video_id = submit("A lighthouse beam sweeps across a stormy sea at night.")

    status = cli("status", video_id)
    assert status.returncode == 0, status.stderr
    shown = fields_of(status.stdout)
    assert shown["video_id"] == video_id
    assert shown["status"] == "completed (succeeded)"
    assert shown["progress"] == "100%"
    assert shown["model"] == "veo3.1-fast" and shown["seconds"] == "4"
    assert shown["video_url"].startswith(emu.cdn_url)
    assert "error" not in shown
    # Times as ISO 8601 in UTC, not the API's epoch seconds.
    job = emu.jobs[video_id]
    assert shown["created_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created_at))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["completed_at"])
    assert f"Fetch it with: python -m airflow_provider_veo download {video_id} DESTINATION" in status.stdout

    download = cli("download", video_id, f"{tmp_path}/", "--json")
    assert download.returncode == 0, download.stderr
    stored = json.loads(download.stdout)  # only the result is on stdout; the hook's log lines are not
    (written,) = tmp_path.iterdir()
    assert stored["uri"] == str(written)
    assert (
        stored["sha256"] == hashlib.sha256(written.read_bytes()).hexdigest() == emu.expected_sha256(video_id)
    )
    assert stored["bytes"] == written.stat().st_size == emu.expected_bytes(video_id)
    assert (stored["duration_seconds"], stored["width"], stored["height"]) == (4.0, 1280, 720)
    assert "Wrote" in download.stderr


def test_a_failed_job_is_shown_and_not_downloaded(emu: VeoEmulator, tmp_path: Path) -> None:
    emu.queue_scenario(
        Scenario(polls_until_done=0, outcome="failed", error_message="Blocked by the safety filter")
    )
    video_id = submit("A storm")

    status = cli("status", video_id, "--json")
    assert status.returncode == 0, status.stderr  # the job was read: its own status is in the output
    job = json.loads(status.stdout)
    assert (job["status"], job["state"]) == ("failed", "failed")
    assert (job["error_code"], job["error_message"]) == (
        "content_policy_violation",
        "Blocked by the safety filter",
    )

    download = cli("download", video_id, f"{tmp_path}/")
    assert download.returncode == 1
    assert download.stdout == ""
    error = download.stderr.splitlines()[-1]  # after whatever Airflow logs while it starts
    assert error.startswith("error: ") and video_id in error
    assert list(tmp_path.iterdir()) == []


def test_a_connection_from_the_metadata_db_and_one_that_is_missing(
    emu: VeoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.configuration import conf
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    # Unit-test mode makes a Fernet key per process: share this one, as a deployment shares its key.
    fernet = {"AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")}

    video_id = submit("A red fox trots through fresh snow.")
    monkeypatch.delenv("AIRFLOW_CONN_VEO_DEFAULT")
    with create_session() as session:
        session.add(Connection(conn_id="veo_from_db", conn_type="veo", host=emu.url, password=KEY))
    try:
        status = cli("status", video_id, "--conn-id", "veo_from_db", env=fernet)
        assert status.returncode == 0, status.stderr
        assert fields_of(status.stdout)["status"] == "completed (succeeded)"
        assert "--conn-id veo_from_db" in status.stdout  # the fetch hint keeps the connection

        missing = cli("status", video_id, "--conn-id", "veo_nowhere", env=fernet)
        assert missing.returncode == 1 and missing.stdout == ""
        error = missing.stderr.splitlines()[-1]
        assert error.startswith("error: ") and "veo_nowhere" in error and "AIRFLOW_CONN_VEO_NOWHERE" in error
    finally:
        with create_session() as session:
            session.query(Connection).filter_by(conn_id="veo_from_db").delete()


def test_an_unknown_id_says_what_it_means_and_what_to_check(emu: VeoEmulator, tmp_path: Path) -> None:
    video_id = "veo3.1-fast:1712345678-NoSuchJob"
    for args in (
        ("status", video_id),
        ("download", video_id, f"{tmp_path}/"),
        ("status", video_id, "--json"),
    ):
        result = cli(*args)
        assert result.returncode == 1 and result.stdout == ""
        error = result.stderr.splitlines()[-1]
        assert error.startswith(f"error: CometAPI has no video '{video_id}' for the connection 'veo_default'")
        assert "task_not_exist" in error  # the API's own words
        assert "whole and exact" in error and "key and Base URL" in error and "try again" in error
    assert list(tmp_path.iterdir()) == []
