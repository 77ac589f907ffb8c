"""The provider on the stack teams run in production: PostgreSQL, Redis, CeleryExecutor with two
workers and two triggerers, each its own process, and machines that die.

Every run is triggered and watched through the REST API. The evidence comes from places that do not
depend on each other: the task instances and tries the API reports (state, try number, and the host
each try ran on: every worker and triggerer has a machine name of its own), the triggerer jobs, the
trigger log files each triggerer wrote, the files in the destination folder, and what the CometAPI
emulator recorded (POSTs, polls, downloads per job, and when). A "machine" dies by SIGKILL to every
process of its session at once: the Celery worker, its pool processes, the task supervisors and the
task processes, so nothing of it finishes a download or answers a heartbeat afterwards.

Numbers worth keeping land in ``artifacts/deployment/celery-*.json``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo import api

from ..stack import (
    HELD,
    Deployment,
    RunWatch,
    assert_all_succeeded_first_try,
    assert_video_file,
    dump,
    finish_jobs,
    jobs_with,
    new_marker,
    peak_jobs_in_flight,
    posts_with,
    wait_until,
)
from .conftest import (
    EXAMPLE_DAG_IDS,
    FANOUT,
    HEARTBEAT_TIMEOUT,
    JOBS_POOL,
    LOAD,
    POKE,
    RESUME,
    TRIGGERERS,
    WORKER_CONCURRENCY,
    WORKERS,
    CeleryDeployment,
)

pytestmark = [pytest.mark.deployment, pytest.mark.celery]

GENERATE = "generate_video"
FAILED_STATES = ("failed", "upstream_failed", "up_for_retry")


# -- helpers ------------------------------------------------------------------------------------


def other(names: tuple[str, str], name: str) -> str:
    [rest] = set(names) - {name}
    return rest


def mapped_ti(dep: Deployment, dag_id: str, run_id: str, map_index: int = 0) -> dict[str, Any] | None:
    """The generate task's instance; fails the test at once if it failed before the machine was killed."""
    for ti in dep.task_instances(dag_id, run_id):
        if ti["task_id"] == GENERATE and ti["map_index"] == map_index:
            assert ti["state"] not in FAILED_STATES, f"the task failed before the kill: {ti}"
            return ti
    return None


def restart_worker(dep: CeleryDeployment, name: str) -> None:
    """Bring the dead machine back (same name), so the next test has two workers again."""
    dep.start_worker(name)
    dep.wait_worker_ready(name)


def partial_files(dep: Deployment, video_id: str) -> list[Path]:
    """Staging files of the video's unfinished downloads (``.<name>.mp4.<random>.part``)."""
    return sorted(dep.videos.glob(f".{api.video_filename(video_id)}.*.part"))


def published(dep: Deployment) -> list[Path]:
    return sorted(path for path in dep.videos.iterdir() if not path.name.startswith("."))


def retrieves_after(dep: Deployment, video_id: str, since: float) -> list[float]:
    """When the job was read (``GET /v1/videos/{id}``) after ``since``, by anyone."""
    path = api.video_path(video_id)
    return [r.at for r in dep.emulator.requests if r.method == "GET" and r.path == path and r.at > since]


def assert_resumed_on_the_other_machine(
    dep: CeleryDeployment, dag_id: str, run_id: str, watch: RunWatch, killed: str
) -> list[dict[str, Any]]:
    """One run, one task: try 1 on the killed worker ended without success, try 2 on the other won."""
    assert watch.state == "success", watch.states
    ti = watch.ti(GENERATE, 0)
    assert ti["state"] == "success" and ti["try_number"] == 2, (ti, watch.states)
    tries = dep.tries(dag_id, run_id, GENERATE, 0)
    assert [t["try_number"] for t in tries] == [1, 2], tries
    first, second = tries
    assert first["hostname"] == killed, first
    assert first["state"] in ("failed", "up_for_retry"), first
    assert second["hostname"] == other(WORKERS, killed), second
    assert second["state"] == "success", second
    return tries


def scheduler_saw_heartbeat_timeout(dep: CeleryDeployment) -> bool:
    logs = [c.log for c in dep.stopped + list(dep.components.values()) if c.name == "scheduler"]
    return any(
        "Detected a task instance without a heartbeat" in log.read_text(errors="replace") for log in logs
    )


# -- tests --------------------------------------------------------------------------------------


def test_example_dags_run_on_both_workers(celery_deployment: CeleryDeployment) -> None:
    """The three example DAGs, triggered together over REST: all succeed, tasks spread over both workers."""
    dep, emulator = celery_deployment, celery_deployment.emulator
    marker = new_marker("examples")
    confs = {"veo_text_to_video": {"prompt": f"[emu:wait=4] A paper kite over a field. {marker}"}}
    since = time.time()
    runs = [(dag_id, dep.trigger(dag_id, confs.get(dag_id))) for dag_id in EXAMPLE_DAG_IDS]
    watches = dep.watch_runs(runs, timeout=300)

    hosts: Counter[str] = Counter()
    for watch in watches:
        assert_all_succeeded_first_try(watch)
        for ti in watch.final:
            hosts[ti["hostname"]] += 1
    # Every task ran on one of the two workers, and each worker ran some.
    assert set(hosts) == set(WORKERS), hosts

    # One POST per submitting task (text to video, image to video with its two frames, one per
    # prompt of the mapped DAG), one download each, and every file is what the emulator served.
    submitting = [ti for w in watches for ti in w.final if ti["task_id"] in ("create_video", GENERATE)]
    posts = [p for p in emulator.posts if p.at >= since]
    assert len(posts) == len(submitting) == 5, [dict(p.form) for p in posts]
    [i2v] = [p for p in posts if p.files]
    assert [f.name for f in i2v.files] == ["input_reference", "input_reference"]
    results = []
    for watch in watches:
        for ti in watch.final:
            if ti["task_id"] in ("download_video", GENERATE):
                results.append(dep.xcom(watch.dag_id, watch.run_id, ti["task_id"], ti["map_index"]))
    assert len(results) == len(submitting)
    for result in results:
        assert emulator.jobs[result["video_id"]].downloads == 1
        assert_video_file(dep, result, result["video_id"])
    numbers = {
        "run_seconds": {w.dag_id: round(w.seconds, 1) for w in watches},
        "task_instances_per_worker": dict(hosts),
        "hosts_per_task": {f"{w.dag_id}.{k[0]}[{k[1]}]": v for w in watches for k, v in w.hosts.items()},
    }
    dump("celery-examples", numbers)
    print(f"\nexample DAGs on Celery: {numbers}")


def test_worker_killed_while_polling_resumes_on_the_other_worker(celery_deployment: CeleryDeployment) -> None:
    """SIGKILL the worker machine whose task polls in poke mode after its POST: the heartbeat timeout
    fails the try, the retry runs on the other worker, reconnects to the job already paid for and
    downloads it once."""
    dep, emulator = celery_deployment, celery_deployment.emulator
    marker = new_marker("poke-kill")
    # The job renders until the retry has read it: the test waits for that, however busy the machine.
    prompt = f"{HELD} A glassblower turns a glowing vase. {marker}"
    run_id = dep.trigger(POKE, {"prompts": [prompt]})

    def polling() -> tuple[str, str] | None:
        jobs = jobs_with(emulator, marker)
        if not jobs:
            return None
        [job] = jobs.values()
        ti = mapped_ti(dep, POKE, run_id)
        # Submitted, read at least twice by the worker, and the API says where it runs.
        if job.polls >= 2 and ti and ti["state"] == "running" and ti["hostname"] in WORKERS:
            return job.id, ti["hostname"]
        return None

    video_id, victim = wait_until(polling, 300, "the task to poll its job on a worker")
    survivor = other(WORKERS, victim)
    job_age = time.monotonic() - emulator.jobs[video_id].started
    killed = dep.kill_machine(victim)
    killed_at = time.time()  # Nothing of the victim is left: whatever reads the job now is the retry.
    try:
        wait_until(lambda: retrieves_after(dep, video_id, killed_at), 600, "the retry to read the job")
        finish_jobs(emulator, [video_id])
        watch = dep.watch_run(POKE, run_id, timeout=300)
    finally:
        restart_worker(dep, victim)

    tries = assert_resumed_on_the_other_machine(dep, POKE, run_id, watch, victim)
    assert scheduler_saw_heartbeat_timeout(dep)
    # Paid once: one POST, the same job polled again by the retry while it still rendered, one download.
    assert len(posts_with(emulator, marker)) == 1
    job = emulator.jobs[video_id]
    assert job.downloads == 1
    polls_after = retrieves_after(dep, video_id, killed_at)
    assert polls_after, "the retry never read the job"
    result = dep.xcom(POKE, run_id, GENERATE, 0)
    assert result["video_id"] == video_id
    path = assert_video_file(dep, result, video_id)
    # Nothing partial: the killed try never began a download.
    assert path in published(dep)
    assert not partial_files(dep, video_id), partial_files(dep, video_id)
    second_try_log = dep.task_log_folder(POKE, run_id, GENERATE, 0) / "attempt=2.log"
    assert video_id in second_try_log.read_text(errors="replace")

    numbers = {
        "victim": victim,
        "survivor": survivor,
        "processes_killed": killed,
        "job_age_at_kill_seconds": round(job_age, 1),
        "task_instance_heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "seconds_from_kill_to_retry_poll": round(polls_after[0] - killed_at, 1),
        "run_seconds": round(watch.seconds, 1),
        "states": watch.states[(GENERATE, 0)],
        "tries": [(t["try_number"], t["state"], t["hostname"]) for t in tries],
    }
    dump("celery-worker-killed-polling", numbers)
    print(f"\nworker killed while polling: {numbers}")


def test_worker_killed_mid_download_downloads_again(celery_deployment: CeleryDeployment) -> None:
    """SIGKILL the worker machine while the resumed task streams a large video: the retry, on the other
    worker, finds the job completed, downloads it again and publishes it whole; still one POST."""
    dep, emulator = celery_deployment, celery_deployment.emulator
    marker = new_marker("download-kill")
    size = 256 * 1024 * 1024  # about 4 s to stream here: time to catch the download half-way
    prompt = f"[emu:wait=3,bytes={size}] A drone shot over a glacier at dawn. {marker}"
    run_id = dep.trigger(RESUME, {"prompts": [prompt]})

    def downloading() -> tuple[str, str, Path] | None:
        jobs = jobs_with(emulator, marker)
        if not jobs:
            return None
        [job] = jobs.values()
        parts = partial_files(dep, job.id)
        if job.downloads < 1 or not parts or parts[0].stat().st_size == 0:
            return None
        ti = mapped_ti(dep, RESUME, run_id)
        if ti and ti["state"] == "running" and ti["hostname"] in WORKERS:
            return job.id, ti["hostname"], parts[0]
        return None

    video_id, victim, part = wait_until(downloading, 180, "the download to begin", interval=0.05)
    killed = dep.kill_machine(victim)
    partial_bytes = part.stat().st_size
    try:
        watch = dep.watch_run(RESUME, run_id, timeout=300)
    finally:
        restart_worker(dep, victim)

    tries = assert_resumed_on_the_other_machine(dep, RESUME, run_id, watch, victim)
    assert 0 < partial_bytes < size, partial_bytes
    # Paid once, downloaded twice (the killed try's stream and the retry's).
    assert len(posts_with(emulator, marker)) == 1
    assert emulator.jobs[video_id].downloads == 2
    result = dep.xcom(RESUME, run_id, GENERATE, 0)
    assert result["video_id"] == video_id and result["bytes"] == size
    path = assert_video_file(dep, result, video_id)
    assert path in published(dep)
    # The published file is whole; the killed try's staging file is all that is left of it (a
    # SIGKILL runs no cleanup): hidden, never at the destination path.
    leftovers = partial_files(dep, video_id)
    assert [p.stat().st_size for p in leftovers] in ([], [partial_bytes]), leftovers

    numbers = {
        "victim": victim,
        "processes_killed": killed,
        "video_bytes": size,
        "bytes_on_disk_when_killed": partial_bytes,
        "seconds_from_kill_to_success": round(watch.seconds, 1),
        "staging_files_left_by_the_killed_try": [(p.name, p.stat().st_size) for p in leftovers],
        "tries": [(t["try_number"], t["state"], t["hostname"]) for t in tries],
    }
    dump("celery-worker-killed-downloading", numbers)
    print(f"\nworker killed mid-download: {numbers}")


def test_triggerer_killed_with_50_deferred_tasks(celery_deployment: CeleryDeployment) -> None:
    """SIGKILL the triggerer machine holding the most of 50 waiting triggers: the other triggerer takes
    them over once the dead one's heartbeat is 30 s old; every task resumes once, no second POST."""
    dep, emulator = celery_deployment, celery_deployment.emulator
    count = 50
    marker = new_marker("triggerer-kill")
    # The jobs render until the survivor has read every moved one: the test waits for events (all
    # deferred, all taken over), with deadlines a busy machine cannot outrun, and no job ends first.
    prompts = [f"{HELD} Clip {i}: a heron lifts off a lake. {marker}" for i in range(count)]
    run_id = dep.trigger(FANOUT, {"prompts": prompts})

    def all_deferred() -> list[dict[str, Any]] | None:
        """All tasks deferred, and each trigger running on the triggerer it is assigned to (a trigger
        is assigned in the DB a moment before that triggerer starts it and opens its log file)."""
        tis = [ti for ti in dep.task_instances(FANOUT, run_id) if ti["task_id"] == GENERATE]
        failed = [(ti["map_index"], ti["state"]) for ti in tis if ti["state"] in FAILED_STATES]
        assert not failed, f"tasks failed before any triggerer was killed (see the process logs): {failed}"
        held = [ti for ti in tis if ti["state"] == "deferred" and (ti.get("triggerer_job") or {}).get("id")]
        if len(held) < count:
            return None
        for ti in held:
            if ti["triggerer_job"]["id"] not in dep.trigger_logs(FANOUT, run_id, GENERATE, ti["map_index"]):
                return None
        return held

    deferred = wait_until(all_deferred, 600, f"{count} deferred tasks held by triggerers", interval=1)
    triggerer_jobs = {job["id"]: job["hostname"] for job in dep.alive_triggerers()}
    assert set(triggerer_jobs.values()) == set(TRIGGERERS), triggerer_jobs
    held = Counter(triggerer_jobs[ti["triggerer_job"]["id"]] for ti in deferred)
    victim = held.most_common(1)[0][0]
    survivor = other(TRIGGERERS, victim)
    [victim_job] = [job_id for job_id, host in triggerer_jobs.items() if host == victim]
    [survivor_job] = [job_id for job_id, host in triggerer_jobs.items() if host == survivor]
    moved = {ti["map_index"] for ti in deferred if ti["triggerer_job"]["id"] == victim_job}
    jobs = jobs_with(emulator, marker)
    assert len(jobs) == count
    oldest = max(time.monotonic() - job.started for job in jobs.values())
    killed = dep.kill_machine(victim)
    killed_at = time.time()  # Nothing of the victim is left: whatever reads a job now is the survivor.
    moved_jobs = [job.id for job in jobs.values() if job.prompt in {prompts[index] for index in moved}]
    try:
        # The survivor takes the triggers over once the victim's heartbeat is 30 s old.
        wait_until(
            lambda: all(retrieves_after(dep, video_id, killed_at) for video_id in moved_jobs),
            600,
            f"the survivor to read the {len(moved)} moved jobs",
            interval=1,
        )
        finish_jobs(emulator, jobs)
        watch = dep.watch_run(FANOUT, run_id, timeout=600, interval=1)
    finally:
        dep.start_triggerer(victim)

    assert_all_succeeded_first_try(watch)
    by_prompt = {job.prompt: job for job in emulator.jobs.values() if marker in job.prompt}
    first_poll_by_survivor = []
    for index, prompt in enumerate(prompts):
        key = (GENERATE, index)
        result = dep.xcom(FANOUT, run_id, GENERATE, index)
        job = by_prompt[prompt]
        assert result["video_id"] == job.id
        assert job.downloads == 1, (index, job.downloads)
        assert_video_file(dep, result, job.id)
        logs = dep.trigger_logs(FANOUT, run_id, GENERATE, index)
        if index in moved:
            # Ran on the victim, then from the start on the survivor; never anywhere else.
            assert set(logs) == {victim_job, survivor_job}, (index, logs.keys())
            assert watch.triggerers[key][-1] == survivor_job, watch.triggerers[key]
            polls = retrieves_after(dep, job.id, killed_at)
            assert polls, f"task {index}: nobody read its job after the kill"
            first_poll_by_survivor.append(polls[0] - killed_at)
        else:
            assert set(logs) == {survivor_job}, (index, logs.keys())
    # One POST per task: nothing was submitted again.
    assert sorted(dict(p.form)["prompt"] for p in posts_with(emulator, marker)) == sorted(prompts)
    # The survivor took the triggers over while their jobs were still rendering (they were held).
    takeover = min(first_poll_by_survivor)

    numbers = {
        "deferred_tasks": count,
        "triggers_per_triggerer_before_the_kill": dict(held),
        "victim": victim,
        "processes_killed": killed,
        "moved_triggers": len(moved),
        "oldest_job_age_at_the_kill_seconds": round(oldest, 1),
        "seconds_from_kill_to_first_poll_by_the_survivor": round(takeover, 1),
        "seconds_from_kill_to_last_moved_trigger_polling": round(max(first_poll_by_survivor), 1),
        "run_seconds": round(watch.seconds, 1),
        "peak_deferred": watch.peak("deferred"),
    }
    dump("celery-triggerer-killed", numbers)
    print(f"\ntriggerer killed with {count} deferred tasks: {numbers}")


def test_200_mapped_jobs_behind_a_pool_of_20(celery_deployment: CeleryDeployment) -> None:
    """A pool that counts deferred tasks caps the jobs rendering at CometAPI, while the waiting tasks
    hold no worker slot: 200 mapped tasks, 20 pool slots, 2 workers x WORKER_CONCURRENCY slots."""
    dep, emulator = celery_deployment, celery_deployment.emulator
    slots, count, job_seconds = 20, 200, 12
    worker_slots = len(WORKERS) * WORKER_CONCURRENCY
    dep.create_pool(JOBS_POOL, slots, include_deferred=True, description="CometAPI jobs in flight")
    marker = new_marker("load")
    # The first `slots` jobs render until that many tasks wait deferred at once, which only a pool
    # that frees their worker slots allows: an event the test waits for, however busy the machine.
    prompts = [
        f"{HELD if i < slots else f'[emu:wait={job_seconds}]'} Load clip {i}: rain on a tin roof. {marker}"
        for i in range(count)
    ]
    held: list[str] = []
    cpu_before = dep.cpu_seconds()
    run_id = dep.trigger(LOAD, {"prompts": prompts})

    # The pool's own counts (every generate task is in it): cheap to read, unlike 200 task instances.
    samples: list[dict[str, float]] = []
    began = time.monotonic()

    def sample_pool(watch: RunWatch) -> None:
        pool = dep.api("GET", f"/api/v2/pools/{JOBS_POOL}")
        sample = {k: pool[k] for k in ("occupied_slots", "running_slots", "queued_slots", "deferred_slots")}
        samples.append({"t": round(time.monotonic() - began, 1), **sample})
        if not held and sample["deferred_slots"] >= slots:
            waiting = [job.id for job in jobs_with(emulator, marker).values() if job.prompt.startswith(HELD)]
            if len(waiting) == slots:  # the pool's slots are all theirs: every one of them is deferred
                held.extend(waiting)
                finish_jobs(emulator, held)

    watch = dep.watch_run(LOAD, run_id, timeout=900, interval=1.0, on_poll=sample_pool, task_instances=False)
    cpu = {name: round(used - cpu_before.get(name, 0.0), 1) for name, used in dep.cpu_seconds().items()}

    assert_all_succeeded_first_try(watch)
    generated = [ti for ti in watch.final if ti["task_id"] == GENERATE]
    assert len(generated) == count
    jobs = jobs_with(emulator, marker)
    assert len(posts_with(emulator, marker)) == len(jobs) == count
    assert all(job.downloads == 1 for job in jobs.values())
    # Every video stored once, whole, under its own name.
    for ti in generated:
        result = dep.xcom(LOAD, run_id, GENERATE, ti["map_index"])
        assert_video_file(dep, result, result["video_id"])
    stored = {path.name for path in published(dep)}
    assert {api.video_filename(video_id) for video_id in jobs} <= stored

    def peak(key: str) -> int:
        return int(max(sample[key] for sample in samples))

    in_flight = peak_jobs_in_flight(jobs)
    hosts = Counter(ti["hostname"] for ti in generated)
    numbers = {
        "tasks": count,
        "pool_slots": slots,
        "worker_slots": worker_slots,
        "emulated_job_seconds": job_seconds,
        "run_seconds": round(watch.seconds, 1),
        "tasks_per_minute": round(count / watch.seconds * 60, 1),
        "peak_jobs_rendering_at_cometapi": in_flight,
        "peak_pool_occupied": peak("occupied_slots"),
        "peak_running": peak("running_slots"),
        "peak_queued": peak("queued_slots"),
        "peak_deferred": peak("deferred_slots"),
        "final_try_per_worker": dict(hosts),
        "cpu_seconds_per_component": cpu,
        "samples": samples,
    }
    dump("celery-load", numbers)
    print(f"\nload on Celery: { {k: v for k, v in numbers.items() if k != 'samples'} }")
    # The pool caps the jobs at CometAPI, deferred ones included ...
    assert in_flight <= slots
    assert numbers["peak_pool_occupied"] <= slots
    # ... while the waiting tasks hold no worker slot: more of them wait than the workers could run.
    assert numbers["peak_running"] <= worker_slots
    assert numbers["peak_deferred"] > worker_slots
    assert len(held) == slots, held
    assert set(hosts) == set(WORKERS), hosts


def test_the_key_is_in_no_log_and_no_table(celery_deployment: CeleryDeployment) -> None:
    """After everything above: the API key is in no process log, no task or trigger log, and no table
    of a ``pg_dump`` of the metadata DB (where the connection is stored encrypted)."""
    dep, emulator = celery_deployment, celery_deployment.emulator
    key = emulator.api_key
    if not emulator.posts:  # Run alone: make the key travel through a worker and a triggerer first.
        run_id = dep.trigger("veo_text_to_video", {"prompt": "[emu:wait=3] A kite. key-check"})
        assert dep.watch_run("veo_text_to_video", run_id, timeout=240).state == "success"
    # The key was in use: every API request the emulator answered carried it.
    api_requests = [r for r in emulator.requests if r.listener == "api"]
    assert api_requests and all(r.headers.get("authorization") == f"Bearer {key}" for r in api_requests)

    process_logs = dep.process_log_files()
    task_logs = dep.task_log_files()
    assert {"scheduler", "api-server", "dag-processor", *WORKERS, *TRIGGERERS, "postgres", "redis"} <= {
        path.name.split(".")[0] for path in process_logs
    }
    assert any(".log.trigger." in path.name for path in task_logs)
    leaks = [path for path in process_logs + task_logs if key in path.read_text(errors="replace")]
    assert not leaks, leaks

    sql = dep.postgres.dump(dep.root / "airflow.sql").read_text(errors="replace")
    tables = re.findall(r"^COPY public\.(\w+) ", sql, flags=re.MULTILINE)
    assert {"connection", "task_instance", "xcom", "trigger", "task_state_store", "log"} <= set(tables)
    assert key not in sql
    # The connection is there, with its key encrypted by the Fernet key.
    [row] = [line for line in sql.splitlines() if "\tveo_default\t" in line]
    assert "\tveo\t" in row
    numbers = {
        "process_logs_scanned": len(process_logs),
        "task_and_trigger_logs_scanned": len(task_logs),
        "tables_dumped": len(tables),
        "dump_bytes": len(sql),
    }
    dump("celery-key-scan", numbers)
    print(f"\nthe key is nowhere: {numbers}")
