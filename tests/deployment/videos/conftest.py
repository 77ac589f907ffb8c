"""A real api-server with one finished DAG run that stored videos, on every supported Airflow.

The module-scoped ``videos_run`` fixture migrates a SQLite DB in a temporary folder, starts
``api-server`` and ``dag-processor`` as separate processes, and runs a DAG that maps
``VeoGenerateVideoOperator`` (waiting in the worker) over three prompts with ``airflow dags test``
against a :class:`~airflow_provider_veo.testing.VeoEmulator` served from this pytest process: a
real DAG run, its XComs written by Airflow, its videos by the operator. Then one of the three
files is deleted. Neither the scheduler nor the triggerer is needed, so this runs on Airflow 3.1
as on 3.3, unlike the other deployment groups.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_veo.testing import VeoEmulator

from ..dag_files import GenerateDag, dag_file
from ..stack import Deployment, running, wait_until

DAG_ID = "veo_videos_view"
PROMPTS = [
    "[emu:wait=1] A paper boat drifts down a rain-filled gutter, soft morning light.",
    "[emu:wait=1] Steam curls from a cup of coffee on a windowsill, snow falling outside.",
    "[emu:wait=1] A red kite climbs over a windy beach at sunset.",
]
#: The map index whose file is deleted after the run, for the "no longer exists" note.
DELETED = 2


@dataclass(frozen=True)
class VideosRun:
    dep: Deployment
    run_id: str
    #: The StoredVideo results, by map index.
    results: dict[int, dict[str, object]]


class ViewDeployment(Deployment):
    group = "videos"

    def __init__(self, root: Path, emulator: VeoEmulator) -> None:
        home = root / "airflow-home"
        super().__init__(
            root, emulator, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
        )

    def wait_parsed(self, dag_id: str, timeout: float = 180) -> None:
        """The api-server answers and the DAG processor has stored the DAG."""

        def parsed() -> bool:
            self.check_alive()
            return bool(self.health()) and self.dag_exists(dag_id)

        wait_until(parsed, timeout, f"the api-server and the DAG {dag_id}", interval=1)


@pytest.fixture(scope="module")
def videos_run() -> Iterator[VideosRun]:
    with VeoEmulator() as emulator:
        dep = ViewDeployment(Path(tempfile.mkdtemp(prefix="veo-videos-view-")), emulator)

        def boot() -> None:
            # Waiting in the worker: what is under test is the view, and Airflow 3.1.8 cannot defer
            # a task where a Fernet key is set (its MultiFernet lacks ``is_encrypted``).
            dep.write_dags(dag_file({DAG_ID: GenerateDag(deferrable=False)}))
            dep.airflow("db", "migrate")
            dep.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(dep.api_port))
            dep.start("dag-processor", "dag-processor")
            dep.wait_parsed(DAG_ID)

        with running(dep, boot):
            dep.airflow("dags", "test", DAG_ID, "--conf", json.dumps({"prompts": PROMPTS}))
            [run] = dep.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
            assert run["state"] == "success", run
            run_id = run["dag_run_id"]
            results = {i: dep.xcom(DAG_ID, run_id, "generate_video", i) for i in range(len(PROMPTS))}
            Path(str(results[DELETED]["uri"])).unlink()
            yield VideosRun(dep, run_id, results)
