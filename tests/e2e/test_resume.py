"""Durable resume with real retries in ``dag.test()``: a retry reconnects to the job it paid for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from .conftest import dag_named

MODES = ["deferrable", "poke"]


def airflow_has_task_state_store() -> bool:
    """``task_state_store`` arrived in Airflow 3.3, together with ``NEVER_EXPIRE``."""
    try:
        from airflow.sdk import NEVER_EXPIRE  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("mode", MODES)
def test_failed_download_is_retried_without_paying_twice(
    emulator: VeoEmulator, tmp_path: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # The first try's three download attempts all meet an expired URL; the retry's gets a fresh one.
    emulator.queue_scenario(Scenario(expired_url_fetches=3))  # the first job only
    result = run_dag(dag_named(f"veo_e2e_generate_{mode}"), run_conf={"destination": f"{tmp_path}/"})

    task = result.task("generate_video")
    assert (result.state, task.state, task.try_number) == ("success", "success", 2)
    video = task.xcom["return_value"]
    assert hashlib.sha256(Path(video["uri"]).read_bytes()).hexdigest() == video["sha256"]
    assert video["sha256"] == emulator.expected_sha256(video["video_id"])
    assert [p.name for p in tmp_path.iterdir()] == [Path(video["uri"]).name]
    log = capfd.readouterr().out
    if airflow_has_task_state_store():
        assert len(emulator.posts) == 1
        assert "submitted by an earlier try" in log
    else:  # Airflow 3.1/3.2: documented, and said in the task log.
        assert len(emulator.posts) == 2
        assert "no task_state_store" in log


def test_generate_fails_without_retry_when_the_job_fails(emulator: VeoEmulator, tmp_path: Path) -> None:
    # A failed generation is final: retrying would pay again for the same refusal.
    emulator.queue_scenario(Scenario(outcome="failed"))
    result = run_dag(dag_named("veo_e2e_generate_deferrable"), run_conf={"destination": f"{tmp_path}/"})
    task = result.task("generate_video")
    assert (task.state, task.try_number) == ("failed", 1)
    assert len(emulator.posts) == 1
    assert list(tmp_path.iterdir()) == []
