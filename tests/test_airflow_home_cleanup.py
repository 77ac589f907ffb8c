"""The test suite removes the temporary Airflow home it makes (``tests/conftest.py``), unless asked
to keep it; a pytest run in a subprocess, with its temporary folder pointed at one of ours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def homes_left_by_a_test_run(tmp_path: Path, **env: str) -> list[Path]:
    # Collecting an end-to-end module imports Airflow, which reads its configuration from the home
    # and registers its own exit handlers: the removal must come after them, and break nothing.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/e2e/test_summary.py"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(tmp_path.glob("veo-tests-airflow-*"))


def test_the_airflow_home_is_removed_when_the_run_ends(tmp_path: Path) -> None:
    assert homes_left_by_a_test_run(tmp_path) == []


def test_the_airflow_home_is_kept_when_asked(tmp_path: Path) -> None:
    (home,) = homes_left_by_a_test_run(tmp_path, VEO_TESTS_KEEP_AIRFLOW_HOME="1")
    assert (home / "dags" / "veo_summary_dags.py").is_file()
