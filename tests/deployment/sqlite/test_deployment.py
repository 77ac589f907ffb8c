"""What only the SQLite/LocalExecutor deployment proves; the rest moved to the Celery group.

* **A clean triggerer stop hands its triggers over at once.** The Celery group kills triggerers
  (SIGKILL: the triggers move once the dead one's heartbeat is 30 s old); here the only triggerer
  gets SIGTERM, a rolling restart, and a new one picks the trigger up right away, on the same try.
* **A pool that does not count deferred tasks does not cap the jobs at CometAPI.** The Celery group
  proves ``include_deferred=True`` caps them; here 40 tasks behind a 10-slot pool with the default
  ``include_deferred=False`` have far more than 10 jobs rendering at once (the README's warning).
* Both on the LocalExecutor, the executor of a one-machine deployment.

Every run is triggered and watched through the REST API; the evidence comes from the task
instances the API reports while polling, the per-triggerer trigger log files, and what the CometAPI
emulator recorded (POSTs, polls, downloads per job). Numbers land in ``artifacts/deployment/*.json``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_veo import api

from ..stack import (
    FIRED,
    HELD,
    Deployment,
    RunWatch,
    assert_all_succeeded_first_try,
    assert_video_file,
    dump,
    finish_jobs,
    jobs_with,
    new_marker,
    polled_in,
    posts_with,
    wait_until,
)
from .conftest import LOAD_POOL, PARALLELISM

pytestmark = pytest.mark.deployment

TEXT_TO_VIDEO = "veo_text_to_video"
LOAD = "veo_deploy_load"
SENSOR = ("wait_for_video", -1)


def sensor_deferred_on(dep: Deployment, run_id: str) -> int | None:
    """The job id of the triggerer running the sensor's trigger, once it has polled at least once."""
    ti = next(t for t in dep.task_instances(TEXT_TO_VIDEO, run_id) if t["task_id"] == SENSOR[0])
    job = ti.get("triggerer_job") or {}
    if ti["state"] != "deferred" or job.get("id") is None:
        return None
    log = dep.trigger_logs(TEXT_TO_VIDEO, run_id, SENSOR[0]).get(job["id"], "")
    return job["id"] if "progress" in log else None


def test_triggerer_sigterm_hands_the_trigger_over_at_once(deployment: Deployment) -> None:
    dep, emulator = deployment, deployment.emulator
    marker = new_marker("restart-SIGTERM")
    # The job renders until the new triggerer has polled it: however slow the machine, the handover
    # is seen on a job still rendering, and the test waits for events, not for a clock.
    prompt = f"{HELD} A lighthouse beam sweeps across a stormy sea. {marker}"
    run_id = dep.trigger(TEXT_TO_VIDEO, {"prompt": prompt, "seconds": "6"})

    old_id = wait_until(lambda: sensor_deferred_on(dep, run_id), 300, "the sensor's trigger to poll")
    video_id = dep.xcom(TEXT_TO_VIDEO, run_id, "create_video")
    stopped_at = time.time()
    stop_seconds = dep.stop("triggerer")
    # A clean stop ends the triggerer's job at once: its triggers are free for any triggerer now,
    # where a crashed one's stay claimed until its heartbeat is 30 s old.
    old_job = dep.api("GET", "/api/v2/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
    [old_state] = [job["state"] for job in old_job if job["id"] == old_id]
    assert old_state != "running", old_state
    dep.start("triggerer", "triggerer")

    def polled_by_a_new_triggerer() -> int | None:
        logs = dep.trigger_logs(TEXT_TO_VIDEO, run_id, SENSOR[0])
        return next((job for job, log in logs.items() if job != old_id and polled_in(log, video_id)), None)

    new_id = wait_until(polled_by_a_new_triggerer, 300, "a new triggerer to poll the job")
    finish_jobs(emulator, [video_id])
    watch = dep.watch_run(TEXT_TO_VIDEO, run_id, timeout=300)

    assert_all_succeeded_first_try(watch)
    assert {ti["task_id"] for ti in watch.final} == {"create_video", "wait_for_video", "download_video"}
    assert len(dep.tries(TEXT_TO_VIDEO, run_id, SENSOR[0])) == 1
    # The old triggerer ran the trigger and did not fire; the new one ran it again and fired once.
    logs = dep.trigger_logs(TEXT_TO_VIDEO, run_id, SENSOR[0])
    assert set(logs) == {old_id, new_id}, logs.keys()
    assert logs[old_id].count(FIRED) == 0 and not polled_in(logs[old_id], video_id, "'completed'")
    assert logs[new_id].count(FIRED) <= 1
    assert set(watch.triggerers.get(SENSOR, [])) <= {new_id}, watch.triggerers
    # One paid request with the run's conf in it, one download, byte for byte what was served; the
    # job was polled again soon after the stop: a clean stop does not wait for a heartbeat to expire.
    [post] = posts_with(emulator, marker)
    assert dict(post.form) == {"model": "veo3.1-fast", "prompt": prompt, "seconds": "6", "size": "1280x720"}
    assert emulator.jobs[video_id].downloads == 1
    result = dep.xcom(TEXT_TO_VIDEO, run_id, "download_video")
    assert result["video_id"] == video_id
    assert_video_file(dep, result, video_id)  # whole, and byte for byte what was served
    retrieve = api.video_path(video_id)
    polls_after = [
        r.at for r in emulator.requests if r.method == "GET" and r.path == retrieve and r.at > stopped_at
    ]
    assert polls_after, "the new triggerer never polled the job"
    handover = polls_after[0] - stopped_at
    numbers = {
        "old_triggerer_job": old_id,
        "old_triggerer_job_state_after_the_stop": old_state,
        "new_triggerer_job": new_id,
        "seconds_until_the_old_triggerer_exited": round(stop_seconds, 1),
        "seconds_from_sigterm_to_first_poll_by_the_new_triggerer": round(handover, 1),
        "run_seconds": round(watch.seconds, 1),
        "sensor_states": watch.states[SENSOR],
    }
    dump("restart-SIGTERM", numbers)
    print(f"\ntriggerer SIGTERM: {numbers}")


def test_a_pool_that_frees_deferred_slots_does_not_cap_the_jobs(deployment: Deployment) -> None:
    """``include_deferred=False`` (the default): a deferred task frees its slot, so the pool limits only
    tasks submitting or downloading, and far more jobs render at CometAPI than the pool has slots."""
    dep, emulator = deployment, deployment.emulator
    slots, count = 10, 40
    dep.create_pool(LOAD_POOL, slots, include_deferred=False, description="CometAPI")
    marker = new_marker("load")
    # Every job renders until all tasks wait deferred at once: the test waits for that state, not for
    # a clock, so a busy machine cannot let early jobs end before the last ones are submitted. A pool
    # that capped the jobs would never get there, and the run would time out.
    prompts = [f"{HELD} Load clip {i}: steam over a coffee cup. {marker}" for i in range(count)]
    run_id = dep.trigger(LOAD, {"prompts": prompts})

    pool_samples: list[dict[str, int]] = []
    rendering_at_once: list[int] = []

    def sample_pool_and_release(watch: RunWatch) -> None:
        pool = dep.api("GET", f"/api/v2/pools/{LOAD_POOL}")
        pool_samples.append({k: pool[k] for k in ("occupied_slots", "running_slots", "deferred_slots")})
        if not rendering_at_once and watch.samples and watch.samples[-1][1]["deferred"] == count:
            jobs = jobs_with(emulator, marker)
            rendering_at_once.append(sum(job.status not in ("completed", "failed") for job in jobs.values()))
            finish_jobs(emulator, jobs)

    watch = dep.watch_run(LOAD, run_id, timeout=900, interval=1.0, on_poll=sample_pool_and_release)

    assert_all_succeeded_first_try(watch)
    assert len([ti for ti in watch.final if ti["task_id"] == "generate_video"]) == count
    assert len(posts_with(emulator, marker)) == count
    jobs = jobs_with(emulator, marker)
    assert len(jobs) == count
    assert all(job.downloads == 1 for job in jobs.values())

    peak_running, peak_deferred = watch.peak("running"), watch.peak("deferred")
    [in_flight] = rendering_at_once
    peak_occupied = max(s["occupied_slots"] for s in pool_samples)
    peak_pool_deferred = max(s["deferred_slots"] for s in pool_samples)
    numbers: dict[str, Any] = {
        "tasks": count,
        "pool_slots": slots,
        "parallelism": PARALLELISM,
        "jobs_held_until_every_task_was_deferred": True,
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
    # the executor runs or the pool admits, and the pool never counts them as occupied ...
    assert peak_running <= PARALLELISM
    assert peak_occupied <= slots
    assert peak_deferred > slots
    # ... so the pool does not cap the jobs at CometAPI (the Celery group's pool, counting deferred
    # tasks, does): well over its slots render at once.
    assert in_flight > slots * 3 // 2
