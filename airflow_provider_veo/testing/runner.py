"""Run a DAG for real with ``dag.test()`` in a throw-away Airflow home, and read back what happened.

Airflow reads its configuration once, at first import, so :func:`airflow_environment` gives the
variables to set before that import (or in a subprocess). The rest reads the metadata DB, the way
a test or a demo wants to check a run: task states per try and the XComs each task left.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def airflow_environment(home: Path, dags_folder: Path | None = None) -> dict[str, str]:
    """Variables for an isolated Airflow: its own home and SQLite DB, no example DAGs."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    return env


def migrate_metadata_db(env: dict[str, str] | None = None) -> None:
    """``airflow db migrate`` in a subprocess, so this process's Airflow is not configured early."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def load_dag(dag_file: Path, dag_id: str) -> Any:
    """Import a DAG file as a module, as the DAG processor would, and return one of its DAGs."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    name = f"veo_dag_{dag_file.stem}"
    spec = importlib.util.spec_from_file_location(name, dag_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # DAGs built in a ``with`` block are known only to the context manager's registry.
    DagContext.current_autoregister_module_name = name
    try:
        spec.loader.exec_module(module)
    finally:
        DagContext.current_autoregister_module_name = None
    for dag, owner in DagContext.autoregistered_dags:
        if owner is module and dag.dag_id == dag_id:
            return dag
    raise LookupError(f"no DAG {dag_id!r} in {dag_file}")


@dataclass
class TaskRecord:
    """One task instance as the metadata DB saw it at the end of the run."""

    task_id: str
    map_index: int
    state: str | None
    try_number: int
    xcom: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """What a DAG run left behind: its state and every task instance with its XComs."""

    dag_id: str
    run_id: str
    state: str
    tasks: list[TaskRecord]

    def task(self, task_id: str, map_index: int = -1) -> TaskRecord:
        for record in self.tasks:
            if record.task_id == task_id and record.map_index == map_index:
                return record
        raise KeyError((task_id, map_index))

    def mapped(self, task_id: str) -> list[TaskRecord]:
        return sorted((r for r in self.tasks if r.task_id == task_id), key=lambda r: r.map_index)


def run_dag(dag: Any, run_conf: dict[str, Any] | None = None) -> RunResult:
    """``dag.test()`` once, then read the run's task instances and XComs back from the DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag_run = dag.test(run_conf=run_conf)
    with create_session() as session:
        instances = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id).all()
        tasks = [TaskRecord(ti.task_id, ti.map_index, _text(ti.state), ti.try_number) for ti in instances]
        rows = session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id).all()
        for row in rows:
            for record in tasks:
                if (record.task_id, record.map_index) == (row.task_id, row.map_index):
                    record.xcom[row.key] = XComModel.deserialize_value(row)
    return RunResult(dag.dag_id, dag_run.run_id, _text(dag_run.state) or "none", tasks)


def _text(state: Any) -> str | None:
    """A state enum as its plain value."""
    return None if state is None else str(getattr(state, "value", state))
