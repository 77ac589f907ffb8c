"""Fixtures for end-to-end runs: a migrated metadata DB, the emulator, and its connection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import load_dag, migrate_metadata_db

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def dag_named(dag_id: str, file_name: str = "veo_e2e_dags.py") -> Any:
    """A DAG of the session's DAGs folder, where ``dag.test()`` expects it to come from."""
    return load_dag(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / file_name, dag_id)


@pytest.fixture(scope="session")
def metadata_db() -> None:
    migrate_metadata_db()


@pytest.fixture
def emulator(metadata_db: None, veo_emulator: VeoEmulator, monkeypatch: pytest.MonkeyPatch) -> VeoEmulator:
    """The provider's own emulator fixture (``veo_default`` points at it), with short polls for the
    example DAGs."""
    monkeypatch.setenv("VEO_POLL_INTERVAL", "0.2")
    return veo_emulator


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Hand the fault suites' rows to ``scripts/write_reliability_doc.py`` when it asked for them."""
    from . import reliability

    reliability.save_if_asked()
