"""The production set-up: PostgreSQL, Redis, CeleryExecutor, two Celery workers, two triggerers.

The package-scoped ``celery_deployment`` fixture starts, each as its own process with its own log
file under the temporary folder's ``process-logs/``:

* ``postgres`` (Debian's PostgreSQL, ``initdb`` in a temporary folder, 127.0.0.1, a free port) and
  ``redis-server`` (no persistence), see :mod:`..services`;
* ``airflow db migrate`` on PostgreSQL, then ``api-server``, ``dag-processor``, ``scheduler``
  (CeleryExecutor), ``triggerer-a`` and ``triggerer-b``, ``worker-a`` and ``worker-b``
  (``airflow celery worker -H <name>@%h -q default -c N``).

Each worker and triggerer is a "machine" of its own: its own Celery node name, log-server port and
host name (``[core] hostname_callable`` answers its name, so the task instances and jobs the API
reports say where they ran). ``veo_default`` is stored in the metadata DB through the REST API, as
a team without a secrets backend would do, and points at a :class:`VeoEmulator` whose API key is
random for the session; no process has it in its environment.

Processes stop with SIGTERM to each process group, then anything left in each session is killed;
PostgreSQL gets a fast shutdown (SIGINT) and Redis SIGTERM; the temporary folders are removed
(``VEO_DEPLOYMENT_KEEP=1`` keeps the Airflow one). Skipped when Airflow is older than 3.3, when the
Celery provider or the PostgreSQL driver is missing (pyproject's ``dev`` group), or when PostgreSQL
or Redis is not installed (``bash scripts/install_ci_system_packages.sh``).

Settings beyond a stock deployment, each for a reason a test shows: ``[scheduler]
task_instance_heartbeat_timeout`` 20 s (default 300) and its detection interval 2 s, so a killed
worker's task is retried within the test; ``[workers] min_heartbeat_interval`` 2 s (default 5),
which also bounds how long a task supervisor may sit in ``select()`` after its task process closed
its sockets but before it exited (a slot held 5 s longer for a fair share of the tasks otherwise);
``[core] hostname_callable`` for the machine names; ``poll_interval`` 2 s in the test DAGs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_veo.testing import VeoEmulator

from ..dag_files import GenerateDag, dag_file
from ..services import PostgresServer, RedisServer, missing_services
from ..stack import Component, Deployment, free_port, require_airflow, running, wait_until

WORKERS = ("worker-a", "worker-b")
TRIGGERERS = ("triggerer-a", "triggerer-b")
#: Task processes each Celery worker runs at once. Waiting for a video holds none (it is deferred):
#: a slot is held only to submit (about 3 s here) and to download. 2 x 6 slots on 2 cores keep the
#: 200-task load test pool-bound more often than not, and stay well under its 20 pool slots, so
#: that more tasks wait deferred than the workers have slots.
WORKER_CONCURRENCY = int(os.environ.get("VEO_CELERY_CONCURRENCY", "6"))
#: Seconds between status reads of a job (the operators' ``poll_interval``; 15 s by default).
POLL_INTERVAL = 2.0
#: Seconds without a heartbeat after which the scheduler fails a running task (default 300).
HEARTBEAT_TIMEOUT = 20
#: The pool of the load test, created by it through the REST API.
JOBS_POOL = "veo_celery_jobs"

FANOUT = "veo_celery_fanout"
LOAD = "veo_celery_load"
POKE = "veo_celery_poke"
RESUME = "veo_celery_resume"
TEST_DAGS = {
    FANOUT: GenerateDag(),
    LOAD: GenerateDag(pool=JOBS_POOL),
    POKE: GenerateDag(deferrable=False, retries=2),
    RESUME: GenerateDag(retries=2),
}
EXAMPLE_DAG_IDS = ("veo_text_to_video", "veo_image_to_video", "veo_generate_mapped")
DAG_IDS = (*EXAMPLE_DAG_IDS, *TEST_DAGS)

#: ``[core] hostname_callable``: each process reports the machine name it was given.
MACHINE_MODULE = '''"""The host name Airflow records for a process of the Celery deployment tests."""

import os
import socket


def hostname() -> str:
    return os.environ.get("VEO_MACHINE") or socket.getfqdn()
'''


class CeleryDeployment(Deployment):
    group = "celery"

    def __init__(
        self, root: Path, emulator: VeoEmulator, postgres: PostgresServer, redis: RedisServer
    ) -> None:
        self.postgres = postgres
        self.redis = redis
        site = root / "site"
        site.mkdir(parents=True)
        (site / "veo_deploy_machine.py").write_text(MACHINE_MODULE)
        super().__init__(
            root,
            emulator,
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "veo_deploy_machine.hostname",
                "AIRFLOW__CELERY__BROKER_URL": redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{postgres.url}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                # A worker that died (SIGKILL, OOM, a lost node) stops heartbeating: its task is failed
                # and retried after this many seconds instead of five minutes.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                # The task supervisor waits up to this long in select(); when the task process closes
                # its sockets a moment before it exits, the slot stays taken for the full wait (5 s).
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            },
            connection_env=False,
            poll_interval=POLL_INTERVAL,
        )

    def start_worker(self, name: str) -> Component:
        """``airflow celery worker`` as machine ``name``: its own node name and log-server port."""
        return self.start(
            name,
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--queues",
            "default",
            "--concurrency",
            str(WORKER_CONCURRENCY),
            env={"VEO_MACHINE": name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
        )

    def wait_worker_ready(self, name: str, timeout: float = 120) -> None:
        component = self.components[name]

        def ready() -> bool:
            self.check_alive()
            return bool(re.search(rf"{re.escape(name)}@\S+ ready\.", component.log_text()))

        wait_until(ready, timeout, f"{name} to be ready", interval=0.5)

    def start_triggerer(self, name: str) -> Component:
        """``airflow triggerer`` as machine ``name``, with a log-server port of its own."""
        return self.start(
            name,
            "triggerer",
            env={"VEO_MACHINE": name, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())},
        )

    def store_connection(self) -> None:
        """``veo_default`` in the metadata DB (its key encrypted with the Fernet key), over REST."""
        self.api(
            "POST",
            "/api/v2/connections",
            json={
                "connection_id": "veo_default",
                "conn_type": "veo",
                "host": self.emulator.url,
                "password": self.emulator.api_key,
            },
            expect=(201,),
        )

    def process_log_files(self) -> list[Path]:
        return sorted(path for path in self.process_logs.iterdir() if path.is_file())

    def task_log_files(self) -> list[Path]:
        return sorted(path for path in (self.home / "logs").rglob("*") if path.is_file())


def skip_without_stack() -> None:
    require_airflow()
    for module, package in (
        ("airflow.providers.celery", "apache-airflow-providers-celery"),
        ("psycopg2", "psycopg2-binary"),
        ("redis", "redis"),
    ):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the Celery deployment needs {package} (bash scripts/bootstrap.sh)")
    if missing := missing_services():
        pytest.skip(
            f"the Celery deployment needs {', '.join(missing)} "
            "(bash scripts/install_ci_system_packages.sh installs them from Debian)"
        )


@pytest.fixture(scope="package")
def celery_deployment() -> Iterator[CeleryDeployment]:
    """PostgreSQL, Redis and a started Celery deployment with two workers and two triggerers."""
    skip_without_stack()
    key = f"sk-veo-{secrets.token_urlsafe(24)}"
    with VeoEmulator(api_key=key) as emulator:
        root = Path(tempfile.mkdtemp(prefix="veo-celery-"))
        logs = root / "process-logs"
        logs.mkdir(parents=True)
        postgres = PostgresServer(logs / "postgres.log")
        redis = RedisServer(logs / "redis.log")
        dep = CeleryDeployment(root, emulator, postgres, redis)
        timings: dict[str, float] = {}

        def boot() -> None:
            began = time.monotonic()
            postgres.start()
            redis.start()
            timings["postgres_and_redis"] = time.monotonic() - began
            dep.write_dags(dag_file(TEST_DAGS))
            dep.airflow("db", "migrate")
            timings["db_migrate"] = time.monotonic() - began
            dep.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(dep.api_port))
            dep.start("dag-processor", "dag-processor")
            dep.start("scheduler", "scheduler")
            for name in TRIGGERERS:
                dep.start_triggerer(name)
            for name in WORKERS:
                dep.start_worker(name)
            dep.wait_healthy()
            dep.store_connection()
            for name in WORKERS:
                dep.wait_worker_ready(name)
            dep.wait_for_dags(DAG_IDS)
            timings["ready"] = time.monotonic() - began
            print(f"\ncelery deployment boot timings (s): { {k: round(v, 1) for k, v in timings.items()} }")

        with running(dep, boot, postgres.stop, redis.stop):
            yield dep
