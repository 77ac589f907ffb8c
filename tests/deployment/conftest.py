"""A real multi-process Airflow deployment on loopback, shared by the tests of this folder.

The session-scoped ``deployment`` fixture migrates a SQLite metadata DB in a temporary folder, then
starts ``api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer`` as separate
processes, each in its own session and process group, with one environment for all of them. The
connection ``veo_default`` points at a :class:`~airflow_provider_veo.testing.VeoEmulator` served
from this pytest process; tests shape each job through a marker in its prompt (``[emu:wait=30]``),
so one deployment and one emulator serve every test.

Tests drive it only through the REST API, like a user would: a token from ``GET /auth/token``,
unpause, trigger, and poll the run and its task instances. Each process writes its output to a log
file under the temporary folder; when a test fails, the tails of those logs are added to its report
and, at the end of the session, every process and task log is copied to ``artifacts/deployment/logs``.
Set ``VEO_DEPLOYMENT_KEEP=1`` to keep the whole temporary folder.

Needs Airflow 3.3+ (LocalExecutor on SQLite, ``task_state_store``): skipped on older versions.
``pytest -m "not deployment"`` leaves the whole group out.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_veo.testing import VeoEmulator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
#: Screenshots and other evidence a human may want to look at after a run (gitignored).
ARTIFACTS = ROOT / "artifacts"

#: LocalExecutor on SQLite and everything else used here works from this Airflow on.
MIN_AIRFLOW = (3, 3)
#: Every process must sign and check the execution API's tokens with the same secret.
JWT_SECRET = "veo-deployment-tests-not-a-real-secret-3f9c2a"
API_SECRET_KEY = "veo-deployment-tests-session-key-7d41e0"
#: A valid Fernet key, fixed so every process decrypts what another stored.
FERNET_KEY = "l3QYdHUo9rXWoFXFBqPG6Yd0Tc2Jm9Ie0Ic7kvzSfV0="
#: Seconds between status reads of the jobs, in the triggerer and in the worker.
POLL_INTERVAL = 1.0
#: Task processes the scheduler's LocalExecutor runs at once (each is a pre-forked worker).
PARALLELISM = int(os.environ.get("VEO_DEPLOYMENT_PARALLELISM", "8"))
#: The pools the load and capped DAGs' tasks run in; their tests create them through the REST API.
LOAD_POOL = "veo_load"
CAPPED_POOL = "veo_jobs"

#: DAGs written next to the copied examples: one deferrable generate task per prompt of the run's conf.
TEST_DAGS = f'''"""DAGs of the deployment tests: one deferrable generate task per prompt in the run's conf."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

POOLS = {{
    "veo_deploy_fanout": "default_pool",
    "veo_deploy_load": {LOAD_POOL!r},
    "veo_deploy_capped": {CAPPED_POOL!r},
}}

for dag_id, pool in POOLS.items():
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_tasks=200,
        tags=["veo", "deployment-test"],
    ):

        @task
        def prompts(dag_run=None) -> list[str]:
            return list(dag_run.conf["prompts"])

        VeoGenerateVideoOperator.partial(
            task_id="generate_video",
            seconds=4,
            destination=os.environ["VEO_DESTINATION"],
            poll_interval=float(os.environ["VEO_POLL_INTERVAL"]),
            timeout=15 * 60,
            deferrable=True,
            pool=pool,
        ).expand(prompt=prompts())
'''

#: The DAGs the deployment must have parsed before tests start.
DAG_IDS = (
    "veo_text_to_video",
    "veo_generate_mapped",
    "veo_deploy_fanout",
    "veo_deploy_load",
    "veo_deploy_capped",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deployment: runs against a real multi-process Airflow deployment on loopback "
        "(Airflow 3.3+, a few minutes; deselect with -m 'not deployment')",
    )


def airflow_version() -> tuple[int, int]:
    major, minor = re.findall(r"\d+", version("apache-airflow"))[:2]
    return int(major), int(minor)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_members(sid: int) -> list[int]:
    """Pids of every process whose session id is ``sid`` (read from /proc)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{exc}>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Component:
    """One Airflow process (with its children): its command, log file and start time."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class RunWatch:
    """What polling a DAG run saw: its final state, and every task instance along the way."""

    dag_id: str
    run_id: str
    state: str = "queued"
    #: The distinct states each task instance went through, in order, keyed by (task_id, map_index).
    states: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    #: The triggerer job ids seen holding each task instance's trigger.
    triggerers: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    #: (seconds since the watch began, count of task instances per state) at each poll.
    samples: list[tuple[float, Counter[str]]] = field(default_factory=list)
    #: The task instances at the end.
    final: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def peak(self, state: str) -> int:
        return max((counts[state] for _, counts in self.samples), default=0)

    def ti(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        for ti in self.final:
            if ti["task_id"] == task_id and ti["map_index"] == map_index:
                return ti
        raise KeyError((task_id, map_index))


class Deployment:
    """The processes of one Airflow deployment, and a small REST client for its API server."""

    def __init__(self, root: Path, emulator: VeoEmulator) -> None:
        self.root = root
        self.emulator = emulator
        self.home = root / "airflow-home"
        self.dags = root / "dags"
        self.videos = root / "videos"
        self.process_logs = root / "process-logs"
        for folder in (self.home, self.videos, self.process_logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.components: dict[str, Component] = {}
        self.stopped: list[Component] = []
        #: Set when a test using the deployment failed: its logs are then kept under artifacts/.
        self.failed = False
        self._starts: Counter[str] = Counter()
        self._token: str | None = None
        self.http = requests.Session()
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("AIRFLOW") and not name.startswith("VEO_")
        }
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **inherited,
            "PATH": f"{bin_dir}{os.pathsep}{inherited.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"{self.url}/",
            "AIRFLOW__API__SECRET_KEY": API_SECRET_KEY,
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "1000",
            "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "VEO_POLL_INTERVAL": str(POLL_INTERVAL),
            "VEO_DESTINATION": f"{self.videos}/",
            **emulator.env(),
        }

    # -- processes --------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 300) -> None:
        """Run one ``airflow`` command to completion, its output in the process logs."""
        log = self.process_logs / f"{'-'.join(args[:2])}.log"
        with log.open("ab") as out:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
        if result.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{tail(log)}")

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Component:
        """Start ``airflow <args>`` as component ``name``, in a new session and process group."""
        if name in self.components:
            raise RuntimeError(f"{name} is already running")
        self._starts[name] += 1
        log = self.process_logs / f"{name}.{self._starts[name]}.log"
        argv = [sys.executable, "-m", "airflow", *args]
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        component = Component(name, argv, log, process)
        self.components[name] = component
        return component

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60) -> float:
        """Signal the component's process group, wait for it to exit, then sweep its session.

        Sending to the group is what a container runtime does (the official image's dumb-init
        forwards signals to the group). Returns the seconds until the main process exited.
        """
        component = self.components.pop(name)
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.pid, sig)
        try:
            component.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.pid, signal.SIGKILL)
            component.process.wait(15)
        elapsed = time.monotonic() - began
        # Task processes start their own process groups but stay in the component's session.
        for pid in session_members(component.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stopped.append(component)
        return elapsed

    def close(self, timeout: float = 20) -> None:
        """Stop every component: SIGTERM to all groups, SIGKILL what is left after ``timeout``, sweep."""
        components = list(self.components.values())
        self.components.clear()
        for component in components:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for component in components:
            try:
                component.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(15)
        for component in components:
            for pid in session_members(component.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.stopped.append(component)
        self.http.close()

    def log_tails(self, lines: int = 60) -> str:
        parts = []
        for component in [*self.stopped, *self.components.values()]:
            state = "running" if component.alive() else f"exited {component.process.returncode}"
            parts.append(f"----- {component.log.name} ({state}) -----\n{tail(component.log, lines)}")
        return "\n".join(parts)

    # -- REST API ---------------------------------------------------------------------------

    def token(self, refresh: bool = False) -> str:
        if self._token is None or refresh:
            response = self.http.get(f"{self.url}/auth/token", timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """One REST call with a bearer token; fails the test on an unexpected status."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(refresh=attempt == 2)}"}
            response = self.http.request(method, self.url + path, headers=headers, timeout=60, **kwargs)
            if response.status_code != 401:
                break
        if response.status_code not in expect:
            raise AssertionError(f"{method} {path} answered {response.status_code}: {response.text[:1000]}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any] | None:
        try:
            response = self.http.get(f"{self.url}/api/v2/monitor/health", timeout=10)
        except requests.RequestException:
            return None
        return response.json() if response.ok else None

    def wait_healthy(self, timeout: float = 180) -> dict[str, Any]:
        """Wait for the metadata DB, scheduler, triggerer and DAG processor to report healthy."""
        deadline = time.monotonic() + timeout
        health: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            health = self.health()
            if health and all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                return health
            time.sleep(1)
        raise TimeoutError(f"the deployment is not healthy after {timeout} s: {health}")

    def check_alive(self) -> None:
        for component in self.components.values():
            if not component.alive():
                raise RuntimeError(
                    f"{component.name} exited with {component.process.returncode}:\n{tail(component.log)}"
                )

    def dag_exists(self, dag_id: str) -> bool:
        return self.api("GET", f"/api/v2/dags/{dag_id}", expect=(200, 404)).get("dag_id") == dag_id

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            self.check_alive()
            missing = [d for d in missing if not self.dag_exists(d)]
            if not missing:
                return
            time.sleep(1)
        errors = self.api("GET", "/api/v2/importErrors")
        raise TimeoutError(f"DAGs {missing} not parsed after {timeout} s; import errors: {errors}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause the DAG and start a run now; returns the run id."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        return run["dag_run_id"]

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = self.run_path(dag_id, run_id) + "/taskInstances"
        return self.api("GET", path, params={"limit": 1000})["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/tries"
        return self.api("GET", path, params={"map_index": map_index})["task_instances"]

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, key: str = "return_value"
    ) -> Any:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.api("GET", path, params={"map_index": map_index})["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in '{["' else value

    def watch_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout: float = 300,
        interval: float = 0.5,
        on_poll: Callable[[RunWatch], None] | None = None,
    ) -> RunWatch:
        """Poll the run and its task instances until the run ends, recording what each went through."""
        watch = RunWatch(dag_id, run_id)
        began = time.monotonic()
        while True:
            run = self.api("GET", self.run_path(dag_id, run_id))
            tis = self.task_instances(dag_id, run_id)
            now = time.monotonic() - began
            watch.state = run["state"]
            watch.samples.append((now, Counter(str(ti["state"]) for ti in tis)))
            for ti in tis:
                key = (ti["task_id"], ti["map_index"])
                seen = watch.states.setdefault(key, [])
                if not seen or seen[-1] != str(ti["state"]):
                    seen.append(str(ti["state"]))
                job = ti.get("triggerer_job") or {}
                if ti["state"] == "deferred" and job.get("id") is not None:
                    held = watch.triggerers.setdefault(key, [])
                    if not held or held[-1] != job["id"]:
                        held.append(job["id"])
            watch.final = tis
            if on_poll is not None:
                on_poll(watch)
            if watch.state in ("success", "failed"):
                watch.seconds = now
                return watch
            if now > timeout:
                raise TimeoutError(
                    f"run {run_id} of {dag_id} still {watch.state} after {timeout} s: {watch.states}"
                )
            self.check_alive()
            time.sleep(interval)

    def trigger_logs(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1
    ) -> dict[int, str]:
        """The trigger log files of one task instance's try, by triggerer job id.

        Each triggerer that ran the task's trigger writes ``attempt=N.log.trigger.<job id>.log``.
        """
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        return {
            int(path.name.rsplit(".", 2)[-2]): path.read_text(errors="replace")
            for path in folder.glob(f"attempt={try_number}.log.trigger.*.log")
        }

    def alive_triggerers(self) -> list[dict[str, Any]]:
        jobs = self.api("GET", "/api/v2/jobs", params={"job_type": "TriggererJob", "is_alive": True})
        return jobs["jobs"]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Call ``condition`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(interval)


#: The deployment of the running session, for failure reports.
_CURRENT: list[Deployment] = []


def require_airflow() -> None:
    if airflow_version() < MIN_AIRFLOW:
        pytest.skip(
            f"the deployment tests need Airflow {'.'.join(map(str, MIN_AIRFLOW))}+ "
            f"(LocalExecutor on SQLite); this is {version('apache-airflow')}"
        )


@pytest.fixture(scope="session")
def deployment_emulator() -> Iterator[VeoEmulator]:
    """The CometAPI emulator every process of the deployment talks to (``veo_default``)."""
    require_airflow()
    with VeoEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def deployment(deployment_emulator: VeoEmulator) -> Iterator[Deployment]:
    """A started deployment: api-server, scheduler, dag-processor and one triggerer, all healthy."""
    require_airflow()
    root = Path(tempfile.mkdtemp(prefix="veo-deployment-"))
    dep = Deployment(root, deployment_emulator)
    _CURRENT.append(dep)
    atexit.register(dep.close)
    began = time.monotonic()
    try:
        shutil.copytree(EXAMPLE_DAGS, dep.dags, ignore=shutil.ignore_patterns("__pycache__"))
        (dep.dags / "veo_deployment_test_dags.py").write_text(TEST_DAGS)
        dep.airflow("db", "migrate")
        dep.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(dep.api_port))
        dep.start("dag-processor", "dag-processor")
        dep.start("scheduler", "scheduler")
        dep.start("triggerer", "triggerer")
        dep.wait_healthy()
        dep.wait_for_dags(DAG_IDS)
        print(f"\ndeployment up in {time.monotonic() - began:.1f} s at {dep.url} (folder {root})")
        yield dep
    except BaseException:
        dep.failed = True
        print(dep.log_tails(), file=sys.stderr)
        raise
    finally:
        dep.close()
        _CURRENT.remove(dep)
        if dep.failed:
            kept = ARTIFACTS / "deployment" / "logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(dep.process_logs, kept / "processes")
            if (dep.home / "logs").is_dir():
                shutil.copytree(dep.home / "logs", kept / "airflow")
            print(f"\nthe deployment's logs are kept in {kept}", file=sys.stderr)
        if not os.environ.get("VEO_DEPLOYMENT_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _CURRENT:
        _CURRENT[-1].failed = True
        report.sections.append(("Airflow process logs (tails)", _CURRENT[-1].log_tails()))
        seen = _CURRENT[-1].emulator.requests
        last = [(r.method, r.path, r.status) for r in seen[-10:]]
        report.sections.append(("CometAPI emulator", f"{len(seen)} requests, the last ones: {last}"))
    return report


def dump(name: str, data: Any) -> Path:
    """Write evidence (numbers, timings) as JSON under ``artifacts/deployment/``."""
    folder = ARTIFACTS / "deployment"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
