"""What both deployment groups share: processes, the REST client, run watching and the checks.

A :class:`Deployment` is one Airflow installation on loopback: a temporary folder (Airflow home,
DAGs, videos, one log file per process), one environment for every process, and the components
started as separate processes, each in its own session and process group. Subclasses (the SQLite
group's and the Celery group's fixtures) add the metadata DB, the executor and the components.

Tests drive it only through the REST API, like a user would: a token from ``GET /auth/token``,
unpause, trigger, and poll the run and its task instances. When a test fails, the tails of the
process logs are added to its report and, once the deployment stops, every process and task log
is copied to ``artifacts/deployment/<group>/logs``. ``VEO_DEPLOYMENT_KEEP=1`` keeps the temporary
folder.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
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

#: Everything used here (task_state_store, LocalExecutor on SQLite) works from this Airflow on.
MIN_AIRFLOW = (3, 3)
#: Every process must sign and check the execution API's tokens with the same secret.
JWT_SECRET = "veo-deployment-tests-not-a-real-secret-3f9c2a"
API_SECRET_KEY = "veo-deployment-tests-session-key-7d41e0"
#: A valid Fernet key, fixed so every process decrypts what another stored.
FERNET_KEY = "l3QYdHUo9rXWoFXFBqPG6Yd0Tc2Jm9Ie0Ic7kvzSfV0="
#: Seconds between status reads of the jobs, in the triggerer and in the worker.
POLL_INTERVAL = 1.0
#: What the triggerer writes when a trigger fires. Lines written as a trigger ends are not always
#: flushed into its log file before the file is closed, so this is only counted "at most once"; the
#: proof that a triggerer ran a trigger is its poll lines.
FIRED = "Trigger fired event"


def airflow_version() -> tuple[int, int]:
    major, minor = re.findall(r"\d+", version("apache-airflow"))[:2]
    return int(major), int(minor)


def require_airflow() -> None:
    if airflow_version() < MIN_AIRFLOW:
        pytest.skip(
            f"the deployment tests need Airflow {'.'.join(map(str, MIN_AIRFLOW))}+ "
            f"(task_state_store, LocalExecutor on SQLite); this is {version('apache-airflow')}"
        )


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


def kill_session(sid: int, sig: int = signal.SIGKILL, rounds: int = 20) -> int:
    """Send ``sig`` to every process of the session, again until none is left; returns how many."""
    killed: set[int] = set()
    for _ in range(rounds):
        members = [pid for pid in session_members(sid) if pid != os.getpid()]
        if not members:
            break
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            killed.add(pid)
        if sig != signal.SIGKILL:
            break
        time.sleep(0.05)
    return len(killed)


def session_cpu_seconds(sid: int) -> float:
    """CPU seconds of the session's live processes and of the children they have reaped."""
    ticks = 0
    for pid in session_members(sid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_used() -> float:
    """CPU seconds of this process and of every child it has reaped (each with its own reaped children):
    once a deployment is stopped, all that its processes, PostgreSQL and Redis used."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{exc}>"
    return "\n".join(text.splitlines()[-lines:])


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


def dump(name: str, data: Any) -> Path:
    """Write evidence (numbers, timings) as JSON under ``artifacts/deployment/``."""
    folder = ARTIFACTS / "deployment"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


@dataclass
class Component:
    """One long-running process (with its children): its command, log file and start time."""

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
    #: The hosts seen running each task instance (``hostname`` of the running task instance).
    hosts: dict[tuple[str, int], list[str]] = field(default_factory=dict)
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
    """The processes of one Airflow deployment, and a small REST client for its API server.

    ``settings`` are the ``AIRFLOW__*`` variables of this kind of deployment (metadata DB,
    executor, its tuning) on top of the common ones; ``connection_env`` puts ``veo_default`` in
    every process's environment instead of the metadata DB.
    """

    #: The name of the group, for the artifacts folder.
    group = "deployment"

    def __init__(
        self,
        root: Path,
        emulator: VeoEmulator,
        settings: dict[str, str],
        *,
        connection_env: bool = True,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
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
        self.boot_seconds = 0.0
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
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
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
            "VEO_POLL_INTERVAL": str(poll_interval),
            "VEO_DESTINATION": f"{self.videos}/",
            **settings,
        }
        if connection_env:
            self.env.update(emulator.env())

    def write_dags(self, test_dags: str) -> None:
        """The example DAGs and the tests' own DAG file: written before the dag-processor starts."""
        shutil.copytree(EXAMPLE_DAGS, self.dags, ignore=shutil.ignore_patterns("__pycache__"))
        (self.dags / "veo_deployment_test_dags.py").write_text(test_dags)

    # -- processes --------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 300) -> None:
        """Run one ``airflow`` command to completion, its output in the process logs."""
        log = self.process_logs / f"{'-'.join(args[:2])}.log"
        with log.open("ab") as out:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
        if result.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{tail(log)}")

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Component:
        """Start ``airflow <args>`` as component ``name``, in a new session and process group.

        Every process runs in the deployment's folder: ``python -m`` puts the working directory first
        on ``sys.path``, and the provider must come from its installation, not from where pytest ran.
        """
        if name in self.components:
            raise RuntimeError(f"{name} is already running")
        self._starts[name] += 1
        log = self.process_logs / f"{name}.{self._starts[name]}.log"
        argv = [sys.executable, "-m", "airflow", *args]
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                cwd=self.root,
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
        kill_session(component.pid)
        self.stopped.append(component)
        return elapsed

    def kill_machine(self, name: str) -> int:
        """SIGKILL every process of the component's session at once: the machine it ran on died.

        Unlike :meth:`stop`, task processes (in process groups of their own) get no chance to
        outlive their parent. Returns how many processes were killed.
        """
        component = self.components.pop(name)
        killed = kill_session(component.pid)
        component.process.wait(15)
        self.stopped.append(component)
        return killed

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
            kill_session(component.pid)
            self.stopped.append(component)
        self.http.close()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each running component's processes, children
        included, and by this pytest process (the emulator and the REST polling)."""
        used = {name: session_cpu_seconds(c.pid) for name, c in self.components.items()}
        times = os.times()
        used["pytest (emulator, REST client)"] = times.user + times.system
        return used

    def log_tails(self, lines: int = 60) -> str:
        parts = []
        for component in [*self.stopped, *self.components.values()]:
            state = "running" if component.alive() else f"exited {component.process.returncode}"
            parts.append(f"----- {component.log.name} ({state}) -----\n{tail(component.log, lines)}")
        return "\n".join(parts)

    def keep_logs(self) -> Path:
        """Copy every process and task log to ``artifacts/deployment/<group>/logs``."""
        kept = ARTIFACTS / "deployment" / self.group / "logs"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(self.process_logs, kept / "processes")
        if (self.home / "logs").is_dir():
            shutil.copytree(self.home / "logs", kept / "airflow")
        return kept

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

    def create_pool(self, name: str, slots: int, *, include_deferred: bool, description: str = "") -> None:
        self.api(
            "POST",
            "/api/v2/pools",
            json={
                "name": name,
                "slots": slots,
                "include_deferred": include_deferred,
                "description": description,
            },
            expect=(201,),
        )

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
        task_instances: bool = True,
    ) -> RunWatch:
        """Poll the run and its task instances until the run ends, recording what each went through.

        ``task_instances=False`` polls only the run's state (and ``on_poll``) and reads the task
        instances once at the end: listing hundreds of them every second loads the API server, which
        also serves the running tasks' execution API.
        """
        return self.watch_runs(
            [(dag_id, run_id)],
            timeout=timeout,
            interval=interval,
            on_poll=on_poll,
            task_instances=task_instances,
        )[0]

    def watch_runs(
        self,
        runs: list[tuple[str, str]],
        *,
        timeout: float = 300,
        interval: float = 0.5,
        on_poll: Callable[[RunWatch], None] | None = None,
        task_instances: bool = True,
    ) -> list[RunWatch]:
        """Poll several runs at once until all have ended; ``on_poll`` sees the first run's watch."""
        watches = [RunWatch(dag_id, run_id) for dag_id, run_id in runs]
        began = time.monotonic()
        while True:
            now = time.monotonic() - began
            for watch in watches:
                if watch.state in ("success", "failed"):
                    continue
                self._poll_run(watch, now, task_instances=task_instances)
                if watch.state in ("success", "failed"):
                    watch.seconds = now
                    if not task_instances:
                        self._poll_run(watch, now, task_instances=True)
            if on_poll is not None:
                on_poll(watches[0])
            if all(watch.state in ("success", "failed") for watch in watches):
                return watches
            if now > timeout:
                unfinished = {w.dag_id: (w.state, w.states) for w in watches if w.state != "success"}
                raise TimeoutError(f"runs not finished after {timeout} s: {unfinished}")
            self.check_alive()
            time.sleep(interval)

    def _poll_run(self, watch: RunWatch, now: float, *, task_instances: bool = True) -> None:
        run = self.api("GET", self.run_path(watch.dag_id, watch.run_id))
        watch.state = run["state"]
        if not task_instances:
            return
        tis = self.task_instances(watch.dag_id, watch.run_id)
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
            if ti["state"] == "running" and ti.get("hostname"):
                hosts = watch.hosts.setdefault(key, [])
                if not hosts or hosts[-1] != ti["hostname"]:
                    hosts.append(ti["hostname"])
        watch.final = tis

    def task_log_folder(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder / f"map_index={map_index}" if map_index >= 0 else folder

    def trigger_logs(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1
    ) -> dict[int, str]:
        """The trigger log files of one task instance's try, by triggerer job id.

        Each triggerer that ran the task's trigger writes ``attempt=N.log.trigger.<job id>.log``.
        """
        folder = self.task_log_folder(dag_id, run_id, task_id, map_index)
        return {
            int(path.name.rsplit(".", 2)[-2]): path.read_text(errors="replace")
            for path in folder.glob(f"attempt={try_number}.log.trigger.*.log")
        }

    def alive_triggerers(self) -> list[dict[str, Any]]:
        jobs = self.api("GET", "/api/v2/jobs", params={"job_type": "TriggererJob", "is_alive": True})
        return jobs["jobs"]


# -- checks shared by the tests ---------------------------------------------------------------


def polled_in(log: str, video_id: str, status: str = "") -> bool:
    """Whether a trigger log shows a poll of the video (with that status, if given)."""
    return f"Video {video_id}: status {status}" in log


#: A prompt marker for a job that renders until the test finishes it with :func:`finish_jobs`: a test
#: waits for an event (a triggerer taking over) for as long as a busy machine needs, and the job cannot
#: end first. (A marker, since the DAG, not the test, submits the job.)
HELD = "[emu:wait=86400]"


def finish_jobs(emulator: VeoEmulator, video_ids: Iterable[str]) -> None:
    """End held jobs now: the next poll of each finds it completed. Each job's length becomes the time
    it has rendered so far, so :func:`peak_jobs_in_flight` still counts it right."""
    jobs = emulator.jobs  # the live jobs, which the emulator reads the scenario of at every poll
    for video_id in video_ids:
        job = jobs[video_id]
        rendered = max(time.monotonic() - job.started, 0.001)
        job.scenario = replace(job.scenario, seconds_until_done=rendered)


def new_marker(name: str) -> str:
    """A tag put in every prompt of one test, to pick its requests out of the shared emulator."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def posts_with(emulator: VeoEmulator, marker: str) -> list[Any]:
    return [r for r in emulator.posts if marker in dict(r.form).get("prompt", "")]


def jobs_with(emulator: VeoEmulator, marker: str) -> dict[str, Any]:
    return {video_id: job for video_id, job in emulator.jobs.items() if marker in job.prompt}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def assert_video_file(dep: Deployment, result: dict[str, Any], video_id: str) -> Path:
    """The file the task reported is in the destination and is exactly what the emulator served."""
    path = Path(result["uri"].removeprefix("file://"))
    assert path.parent == dep.videos, result
    assert path.stat().st_size == result["bytes"] == dep.emulator.expected_bytes(video_id)
    assert sha256_file(path) == result["sha256"] == dep.emulator.expected_sha256(video_id)
    return path


def assert_all_succeeded_first_try(watch: RunWatch) -> None:
    assert watch.state == "success", watch.states
    for ti in watch.final:
        where = (ti["task_id"], ti["map_index"], watch.states[(ti["task_id"], ti["map_index"])])
        assert ti["state"] == "success", where
        assert ti["try_number"] == 1, where


def peak_jobs_in_flight(jobs: dict[str, Any]) -> int:
    """The most emulated jobs rendering at one time (from creation until their wall-clock end)."""
    edges = sorted(
        edge
        for job in jobs.values()
        for edge in ((job.started, 1), (job.started + job.scenario.seconds_until_done, -1))
    )
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


#: The deployments running now, for failure reports.
ACTIVE: list[Deployment] = []


@contextlib.contextmanager
def running(dep: Deployment, boot: Callable[[], None], *after: Callable[[], None]) -> Iterator[Deployment]:
    """Boot the deployment, yield it, then stop its processes and run ``after`` (services).

    On a failure (booting or a test) the process tails are printed and every log is kept under
    ``artifacts/deployment/<group>/logs``; the temporary folder goes unless ``VEO_DEPLOYMENT_KEEP``.
    """
    ACTIVE.append(dep)
    atexit.register(dep.close)
    began = time.monotonic()
    cpu_began = cpu_used()
    load_began = os.getloadavg()[0]
    try:
        boot()
        dep.boot_seconds = time.monotonic() - began
        print(f"\n{dep.group} deployment up in {dep.boot_seconds:.1f} s at {dep.url} (folder {dep.root})")
        yield dep
    except BaseException:
        dep.failed = True
        print(dep.log_tails(), file=sys.stderr)
        raise
    finally:
        dep.close()
        for stop in after:
            with contextlib.suppress(Exception):
                stop()
        ACTIVE.remove(dep)
        wall, cpu = time.monotonic() - began, cpu_used() - cpu_began
        usage = {
            "wall_seconds": round(wall, 1),
            "boot_seconds": round(dep.boot_seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "cores_busy_on_average": round(cpu / wall, 2),
            "cpu_count": os.cpu_count(),
            "load_average_1min_at_start_and_end": (round(load_began, 1), round(os.getloadavg()[0], 1)),
        }
        dump(f"{dep.group}-usage", usage)
        print(f"\n{dep.group} deployment, boot to teardown: {usage}")
        if dep.failed:
            print(f"\nthe deployment's logs are kept in {dep.keep_logs()}", file=sys.stderr)
        if not os.environ.get("VEO_DEPLOYMENT_KEEP"):
            shutil.rmtree(dep.root, ignore_errors=True)
