"""The development set-up: SQLite metadata DB and the LocalExecutor.

The package-scoped ``deployment`` fixture migrates a SQLite DB in a temporary folder, then starts
``api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer`` as separate
processes. The connection ``veo_default`` comes from ``AIRFLOW_CONN_VEO_DEFAULT`` in every process and
points at a :class:`~airflow_provider_veo.testing.VeoEmulator` served from this pytest process;
tests shape each job through a marker in its prompt (``[emu:wait=30]``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_veo.testing import VeoEmulator

from ..dag_files import GenerateDag, dag_file
from ..stack import Deployment, require_airflow, running

#: Task processes the scheduler's LocalExecutor runs at once (each is a pre-forked worker).
PARALLELISM = int(os.environ.get("VEO_DEPLOYMENT_PARALLELISM", "8"))
#: The pool the load DAG's tasks run in; its test creates it through the REST API.
LOAD_POOL = "veo_load"

TEST_DAGS = {
    "veo_deploy_load": GenerateDag(pool=LOAD_POOL),
}
#: The DAGs the deployment must have parsed before tests start.
DAG_IDS = ("veo_text_to_video", *TEST_DAGS)


class LocalDeployment(Deployment):
    group = "sqlite"

    def __init__(self, root: Path, emulator: VeoEmulator) -> None:
        home = root / "airflow-home"
        super().__init__(
            root,
            emulator,
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            },
        )


@pytest.fixture(scope="package")
def deployment() -> Iterator[Deployment]:
    """A started deployment: api-server, scheduler, dag-processor and one triggerer, all healthy."""
    require_airflow()
    with VeoEmulator() as emulator:
        dep = LocalDeployment(Path(tempfile.mkdtemp(prefix="veo-deployment-")), emulator)

        def boot() -> None:
            dep.write_dags(dag_file(TEST_DAGS))
            dep.airflow("db", "migrate")
            dep.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(dep.api_port))
            dep.start("dag-processor", "dag-processor")
            dep.start("scheduler", "scheduler")
            dep.start("triggerer", "triggerer")
            dep.wait_healthy()
            dep.wait_for_dags(DAG_IDS)

        with running(dep, boot):
            yield dep
