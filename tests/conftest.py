"""Give the whole test session its own Airflow home before anything imports Airflow.

Airflow reads its configuration once, at first import; unit tests and end-to-end runs share one
temporary home with a SQLite metadata DB, migrated once by the end-to-end fixtures that need it,
and removed when the test process exits.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from airflow_provider_veo.testing.runner import airflow_environment

# The provider's pytest fixture (veo_emulator) is opt-in, as for any user of the provider. An install
# made before it was (its metadata still has the pytest11 entry point) has pytest load it already:
# pytest reads every distribution's entry points, as here.
_PLUGIN = "airflow_provider_veo.testing.pytest_plugin"
if not any(
    entry.group == "pytest11" and entry.value == _PLUGIN
    for dist in importlib.metadata.distributions()
    for entry in dist.entry_points
):
    pytest_plugins = [_PLUGIN]

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="veo-tests-airflow-"))
_SESSION_PID = os.getpid()


def _remove_airflow_home() -> None:
    """Remove the session's Airflow home (DB, logs, DAG copies) when the test process exits.

    At exit rather than at session finish: Airflow's own exit handlers, registered after this one
    when Airflow is imported, run first and may still touch the DB. A forked child that runs exit
    handlers leaves it alone. ``VEO_TESTS_KEEP_AIRFLOW_HOME=1`` keeps it, to look into after a run.
    """
    if os.getpid() == _SESSION_PID and not os.environ.get("VEO_TESTS_KEEP_AIRFLOW_HOME"):
        shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


atexit.register(_remove_airflow_home)

# dag.test() (Airflow 3.3) runs only DAGs of the DAGs folder: the examples and the tests' own DAGs.
DAGS_FOLDER = AIRFLOW_HOME / "dags"
shutil.copytree(ROOT / "example_dags", DAGS_FOLDER)
shutil.copytree(ROOT / "tests" / "e2e" / "dags", DAGS_FOLDER, dirs_exist_ok=True)

os.environ.update(airflow_environment(AIRFLOW_HOME, DAGS_FOLDER))
# Unit tests call operator.execute() directly, which Airflow allows only in unit-test mode.
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# The emulator finishes jobs at once: tests poll it faster than the 1-second floor a real API gets.
os.environ["AIRFLOW__VEO__MIN_POLL_INTERVAL"] = "0.01"
os.environ.pop("AIRFLOW_CONN_VEO_DEFAULT", None)


def pytest_configure(config: pytest.Config) -> None:
    """The markers of the groups ``scripts/test.sh`` leaves out and ``scripts/test_deployments.sh`` runs
    (``deployment`` and ``celery`` are registered by ``tests/deployment/``)."""
    config.addinivalue_line("markers", "benchmark: the benchmark's quick mode (minutes; checks the script)")
