"""Fixtures for end-to-end runs: a migrated metadata DB, the emulator, and its connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
def emulator(metadata_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[VeoEmulator]:
    """A running emulator that ``veo_default`` points at, with short polls for the example DAGs."""
    with VeoEmulator() as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VEO_POLL_INTERVAL", "0.2")
        yield emu


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Hand the fault suites' rows to ``scripts/write_reliability_doc.py`` when it asked for them."""
    from . import reliability

    reliability.save_if_asked()
