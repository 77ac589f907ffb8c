"""The provider in a real multi-process Airflow: REST-triggered runs, deferral to the triggerer,
triggerer restarts (SIGTERM and SIGKILL), two triggerers at once, and 100 mapped jobs behind a pool.

Every run is triggered and watched through the REST API; the evidence comes from three places that
do not depend on each other: the task instances the API reports while polling (``deferred`` seen,
the triggerer job holding the trigger, the try number), the per-triggerer trigger log files the
triggerer wrote (``attempt=1.log.trigger.<job id>.log``), and what the CometAPI emulator recorded
(POSTs, polls, downloads per job). Numbers worth keeping land in ``artifacts/deployment/*.json``.
"""

from __future__ import annotations

import hashlib
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo import api
from airflow_provider_veo.testing import SAMPLE_MP4, VeoEmulator

from .conftest import CAPPED_POOL, LOAD_POOL, PARALLELISM, Deployment, RunWatch, dump, free_port, wait_until

pytestmark = pytest.mark.deployment

TEXT_TO_VIDEO = "veo_text_to_video"
FANOUT = "veo_deploy_fanout"
LOAD = "veo_deploy_load"
CAPPED = "veo_deploy_capped"
SENSOR = ("wait_for_video", -1)
#: What the triggerer writes when a trigger fires. Lines written as a trigger ends are not always
#: flushed into its log file before the file is closed, so this is only counted "at most once"; the
#: proof that a triggerer ran a trigger is its poll lines, and that the task resumed once is one
#: try and one download.
FIRED = "Trigger fired event"


def polled_in(log: str, video_id: str, status: str = "") -> bool:
    """Whether a trigger log shows a poll of the video (with that status, if given)."""
    return f"Video {video_id}: status {status}" in log


def new_marker(name: str) -> str:
    """A tag put in every prompt of one test, to pick its requests out of the shared emulator."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def posts_with(emulator: VeoEmulator, marker: str) -> list[Any]:
    return [r for r in emulator.posts if marker in dict(r.form).get("prompt", "")]


def jobs_with(emulator: VeoEmulator, marker: str) -> dict[str, Any]:
    return {video_id: job for video_id, job in emulator.jobs.items() if marker in job.prompt}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_video_file(dep: Deployment, result: dict[str, Any], video_id: str) -> bytes:
    """The file the download task reported is in the destination and is exactly what the emulator served."""
    path = Path(result["uri"].removeprefix("file://"))
    assert path.parent == dep.videos, result
    data = path.read_bytes()
    assert sha256(data) == result["sha256"] == dep.emulator.expected_sha256(video_id)
    assert len(data) == result["bytes"] == dep.emulator.expected_bytes(video_id)
    return data


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


def sensor_deferred_on(dep: Deployment, run_id: str) -> int | None:
    """The job id of the triggerer running the sensor's trigger, once it has polled at least once."""
    ti = next(t for t in dep.task_instances(TEXT_TO_VIDEO, run_id) if t["task_id"] == SENSOR[0])
    job = ti.get("triggerer_job") or {}
    if ti["state"] != "deferred" or job.get("id") is None:
        return None
    log = dep.trigger_logs(TEXT_TO_VIDEO, run_id, SENSOR[0]).get(job["id"], "")
    return job["id"] if "progress" in log else None


def test_text_to_video_through_the_rest_api(deployment: Deployment) -> None:
    dep, emulator = deployment, deployment.emulator
    marker = new_marker("t2v")
    prompt = f"[emu:wait=12] A paper kite floats above a field at golden hour. {marker}"
    run_id = dep.trigger(TEXT_TO_VIDEO, {"prompt": prompt, "seconds": "6"})
    watch = dep.watch_run(TEXT_TO_VIDEO, run_id, timeout=240)

    assert_all_succeeded_first_try(watch)
    assert {ti["task_id"] for ti in watch.final} == {"create_video", "wait_for_video", "download_video"}

    # The sensor went through `deferred` and came back: seen by polling the API, held by one triggerer.
    states = watch.states[SENSOR]
    assert "deferred" in states, states
    assert states.index("deferred") < states.index("success"), states
    [triggerer_id] = watch.triggerers[SENSOR]
    assert len(dep.tries(TEXT_TO_VIDEO, run_id, SENSOR[0])) == 1
    # ... and written down by that triggerer, the only one that ran the trigger: it polled the job.
    logs = dep.trigger_logs(TEXT_TO_VIDEO, run_id, SENSOR[0])
    assert list(logs) == [triggerer_id], logs.keys()
    video_id = dep.xcom(TEXT_TO_VIDEO, run_id, "create_video")
    assert logs[triggerer_id].count(FIRED) <= 1
    assert polled_in(logs[triggerer_id], video_id, "'in_progress'")

    # One paid request, with the run's conf in it; one download.
    [post] = posts_with(emulator, marker)
    assert dict(post.form) == {"model": "veo3.1-fast", "prompt": prompt, "seconds": "6", "size": "1280x720"}
    assert emulator.jobs[video_id].downloads == 1

    # The MP4 is byte for byte what the emulator served.
    result = dep.xcom(TEXT_TO_VIDEO, run_id, "download_video")
    assert result["video_id"] == video_id
    assert assert_video_file(dep, result, video_id) == SAMPLE_MP4.read_bytes()
    print(
        f"\ntext to video: run took {watch.seconds:.1f} s; sensor states {states}; triggerer {triggerer_id}"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_triggerer_restart_while_deferred(deployment: Deployment, sig: signal.Signals) -> None:
    dep, emulator = deployment, deployment.emulator
    marker = new_marker(f"restart-{sig.name}")
    job_seconds = 40
    prompt = f"[emu:wait={job_seconds}] A lighthouse beam sweeps across a stormy sea. {marker}"
    run_id = dep.trigger(TEXT_TO_VIDEO, {"prompt": prompt})

    old_id = wait_until(lambda: sensor_deferred_on(dep, run_id), 120, "the sensor's trigger to poll")
    video_id = dep.xcom(TEXT_TO_VIDEO, run_id, "create_video")
    job_age = time.monotonic() - emulator.jobs[video_id].started
    assert job_age < job_seconds - 3, f"too slow: the job is {job_age:.0f} s old before the triggerer stops"
    killed_at = time.time()
    stop_seconds = dep.stop("triggerer", sig)
    stopped_at = time.time()
    dep.start("triggerer", "triggerer")
    watch = dep.watch_run(TEXT_TO_VIDEO, run_id, timeout=240)

    assert_all_succeeded_first_try(watch)
    assert len(dep.tries(TEXT_TO_VIDEO, run_id, SENSOR[0])) == 1
    # The old triggerer ran the trigger and did not fire; a new triggerer ran it again and fired once.
    logs = dep.trigger_logs(TEXT_TO_VIDEO, run_id, SENSOR[0])
    assert old_id in logs and len(logs) == 2, logs.keys()
    [new_id] = set(logs) - {old_id}
    assert logs[old_id].count(FIRED) == 0 and not polled_in(logs[old_id], video_id, "'completed'")
    assert polled_in(logs[new_id], video_id) and logs[new_id].count(FIRED) <= 1
    assert watch.triggerers[SENSOR][0] == old_id
    assert watch.triggerers[SENSOR] in ([old_id], [old_id, new_id]), watch.triggerers
    # Still one paid request and one download; the job was polled again after the restart.
    assert len(posts_with(emulator, marker)) == 1
    assert emulator.jobs[video_id].downloads == 1
    retrieve = api.video_path(video_id)
    polls_after = [
        r.at for r in emulator.requests if r.method == "GET" and r.path == retrieve and r.at > stopped_at
    ]
    assert polls_after, "the new triggerer never polled the job"
    numbers = {
        "signal": sig.name,
        "old_triggerer_job": old_id,
        "new_triggerer_job": new_id,
        "seconds_until_the_old_triggerer_exited": round(stop_seconds, 1),
        "seconds_from_signal_to_first_poll_by_the_new_triggerer": round(polls_after[0] - killed_at, 1),
        "run_seconds": round(watch.seconds, 1),
        "sensor_states": watch.states[SENSOR],
    }
    dump(f"restart-{sig.name}", numbers)
    print(f"\ntriggerer restart: {numbers}")


def test_two_triggerers_resume_each_task_once(deployment: Deployment) -> None:
    dep, emulator = deployment, deployment.emulator
    count, capacity = 8, 4
    before = {job["id"] for job in dep.alive_triggerers()}
    # Two triggerers that may each hold half of the triggers, so that both must take some.
    dep.stop("triggerer")
    capped = {"AIRFLOW__TRIGGERER__CAPACITY": str(capacity)}
    dep.start("triggerer-a", "triggerer", env=capped)
    # A second triggerer on the same host needs a log server port of its own.
    port = str(free_port())
    dep.start("triggerer-b", "triggerer", env={**capped, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": port})
    try:

        def two_new_alive() -> set[int]:
            ids = {job["id"] for job in dep.alive_triggerers()} - before
            return ids if len(ids) == 2 else set()

        triggerer_ids = wait_until(two_new_alive, 90, "two live triggerers")
        marker = new_marker("two-triggerers")
        prompts = [f"[emu:wait=15] Clip {i} of a red fox in the snow. {marker}" for i in range(count)]
        run_id = dep.trigger(FANOUT, {"prompts": prompts})
        watch = dep.watch_run(FANOUT, run_id, timeout=300)
    finally:
        dep.stop("triggerer-a")
        dep.stop("triggerer-b")
        dep.start("triggerer", "triggerer")

    assert_all_succeeded_first_try(watch)
    held_by: Counter[int] = Counter()
    jobs = jobs_with(emulator, marker)
    for index in range(len(prompts)):
        key = ("generate_video", index)
        assert "deferred" in watch.states[key], watch.states[key]
        result = dep.xcom(FANOUT, run_id, "generate_video", index)
        video_id = result["video_id"]
        # Each trigger ran on exactly one triggerer; the task resumed once (one try, one download)
        # and stored exactly what was served.
        logs = dep.trigger_logs(FANOUT, run_id, "generate_video", index)
        assert len(logs) == 1, (index, logs.keys())
        [(job_id, text)] = logs.items()
        assert job_id in triggerer_ids
        assert watch.triggerers[key] == [job_id]
        assert polled_in(text, video_id) and text.count(FIRED) <= 1
        held_by[job_id] += 1
        assert len(dep.tries(FANOUT, run_id, "generate_video", index)) == 1
        assert jobs[video_id].downloads == 1
        assert_video_file(dep, result, video_id)
    # One paid request per task.
    assert sorted(dict(p.form)["prompt"] for p in posts_with(emulator, marker)) == sorted(prompts)
    assert len(jobs) == len(prompts)
    numbers = {
        "capacity_per_triggerer": capacity,
        "peak_deferred": watch.peak("deferred"),
        "triggers_per_triggerer_job": dict(held_by),
        "run_seconds": round(watch.seconds, 1),
    }
    dump("two-triggerers", numbers)
    print(f"\ntwo triggerers: {numbers}")
    # More tasks waited at once than one triggerer may hold: both triggerers ran triggers.
    assert watch.peak("deferred") > capacity, numbers
    assert set(held_by) == triggerer_ids, numbers


def test_100_mapped_jobs_behind_a_pool_hold_no_slot_while_deferred(deployment: Deployment) -> None:
    dep, emulator = deployment, deployment.emulator
    slots, count, job_seconds = 20, 100, 30
    dep.api(
        "POST",
        "/api/v2/pools",
        json={"name": LOAD_POOL, "slots": slots, "include_deferred": False, "description": "CometAPI"},
        expect=(201,),
    )
    marker = new_marker("load")
    prompts = [
        f"[emu:wait={job_seconds}] Load clip {i}: steam over a coffee cup. {marker}" for i in range(count)
    ]
    run_id = dep.trigger(LOAD, {"prompts": prompts})

    pool_samples: list[dict[str, int]] = []

    def sample_pool(watch: RunWatch) -> None:
        pool = dep.api("GET", f"/api/v2/pools/{LOAD_POOL}")
        pool_samples.append({k: pool[k] for k in ("occupied_slots", "running_slots", "deferred_slots")})

    watch = dep.watch_run(LOAD, run_id, timeout=600, interval=1.0, on_poll=sample_pool)

    assert_all_succeeded_first_try(watch)
    assert len([ti for ti in watch.final if ti["task_id"] == "generate_video"]) == count
    assert len(posts_with(emulator, marker)) == count
    jobs = jobs_with(emulator, marker)
    assert len(jobs) == count
    assert all(job.downloads == 1 for job in jobs.values())
    assert len({job.scenario.seconds_until_done for job in jobs.values()}) == 1

    peak_running, peak_deferred = watch.peak("running"), watch.peak("deferred")
    in_flight = peak_jobs_in_flight(jobs)
    peak_occupied = max(s["occupied_slots"] for s in pool_samples)
    peak_pool_deferred = max(s["deferred_slots"] for s in pool_samples)
    numbers = {
        "tasks": count,
        "pool_slots": slots,
        "parallelism": PARALLELISM,
        "emulated_job_seconds": job_seconds,
        "run_seconds": round(watch.seconds, 1),
        "peak_running": peak_running,
        "peak_queued": watch.peak("queued"),
        "peak_deferred": peak_deferred,
        "peak_pool_occupied_slots": peak_occupied,
        "peak_pool_deferred_slots": peak_pool_deferred,
        "peak_jobs_in_flight_at_cometapi": in_flight,
        "posts": len(posts_with(emulator, marker)),
        "samples": [(round(t, 1), dict(c)) for t, c in watch.samples],
    }
    dump("load", numbers)
    print(
        f"\nload: {count} tasks in {watch.seconds:.0f} s; peak running {peak_running} (parallelism "
        f"{PARALLELISM}), peak deferred {peak_deferred}, pool occupied at most {peak_occupied}/{slots} "
        f"while it counted up to {peak_pool_deferred} deferred tasks outside its slots; "
        f"up to {in_flight} jobs rendering at once"
    )
    # Deferred tasks hold neither a worker slot nor a pool slot: far more of them wait at once than
    # the executor runs or the pool admits, and the pool never counts them as occupied.
    assert peak_running <= PARALLELISM
    assert peak_occupied <= slots
    assert peak_deferred > slots
    assert peak_deferred > peak_running


def test_a_pool_that_counts_deferred_tasks_caps_the_jobs_in_flight(deployment: Deployment) -> None:
    """``include_deferred=True``: a task keeps its pool slot while its job renders, so the pool caps
    the jobs running at CometAPI (the load test shows a pool without it does not)."""
    dep, emulator = deployment, deployment.emulator
    slots, count, job_seconds = 3, 9, 8
    dep.api(
        "POST",
        "/api/v2/pools",
        json={"name": CAPPED_POOL, "slots": slots, "include_deferred": True, "description": "CometAPI jobs"},
        expect=(201,),
    )
    marker = new_marker("capped")
    prompts = [f"[emu:wait={job_seconds}] Capped clip {i}: a paper boat. {marker}" for i in range(count)]
    run_id = dep.trigger(CAPPED, {"prompts": prompts})
    watch = dep.watch_run(CAPPED, run_id, timeout=300)

    assert_all_succeeded_first_try(watch)
    jobs = jobs_with(emulator, marker)
    assert len(posts_with(emulator, marker)) == len(jobs) == count
    assert all(job.downloads == 1 for job in jobs.values())
    in_flight = peak_jobs_in_flight(jobs)
    active = max(c["running"] + c["queued"] + c["deferred"] for _, c in watch.samples)
    numbers = {
        "pool_slots": slots,
        "tasks": count,
        "peak_jobs_in_flight_at_cometapi": in_flight,
        "peak_deferred": watch.peak("deferred"),
        "peak_running_queued_or_deferred": active,
        "run_seconds": round(watch.seconds, 1),
    }
    dump("capped-pool", numbers)
    print(f"\npool counting deferred tasks: {numbers}")
    assert in_flight <= slots
    assert active <= slots
    assert watch.peak("deferred") >= 2
