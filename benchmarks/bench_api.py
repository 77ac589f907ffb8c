"""API economy: GETs per job at the default poll interval, and how the client waits out a 429 storm.

* Simulated: :class:`~airflow_provider_veo.api.JobWatch` (the trigger's and the operators' polling
  decisions) driven by a fake clock, over many seeds, for a 60-second and a 6-minute job.
* Real: one job on the emulator (in this process: only requests are counted here, not CPU) polled by
  :class:`~airflow_provider_veo.triggers.veo.VeoTaskTrigger` at ``DEFAULT_POLL_INTERVAL`` from the
  create's answer, as the deferring operator hands it over; the
  emulator's own records give the GETs and the gaps between them.
* 429 storm: the emulator answers the next requests 429 with ``Retry-After``; the gaps between the
  requests it received are the delays the client actually waited. A 503 storm (no ``Retry-After``)
  shows the exponential backoff with jitter for contrast.

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import statistics
import time
from typing import Any

from benchlib import emit

from airflow_provider_veo import api
from airflow_provider_veo.api import DEFAULT_POLL_INTERVAL, JobWatch, VideoJob
from airflow_provider_veo.testing.emulator import Scenario, VeoEmulator

logging.getLogger("airflow_provider_veo").setLevel(logging.ERROR)


class _Quiet:
    def info(self, msg: str, *args: object) -> None:
        pass

    def warning(self, msg: str, *args: object) -> None:
        pass


def simulate(job_seconds: float, poll_interval: float, seed: int) -> dict[str, float]:
    """One job watched by JobWatch on a fake clock, as the operators wait: the create's answer is the
    first status (no GET), each GET comes after the step the watch gave. GETs made, and how late the
    end was seen."""
    random.seed(seed)
    now = [0.0]
    watch = JobWatch("sim", poll_interval, api.DEFAULT_TIMEOUT, _Quiet(), clock=lambda: now[0])
    gets, gaps = 0, []
    outcome = VideoJob("sim", "queued")  # the create's answer: the first status, without a GET
    while not isinstance(step := watch.after_poll(outcome), dict):
        gaps.append(step)
        now[0] += step
        gets += 1
        done = now[0] >= job_seconds
        outcome = VideoJob("sim", "completed" if done else "in_progress", progress=100 if done else 50)
    return {"gets": gets, "seen_late_s": now[0] - job_seconds, "min_gap_s": min(gaps, default=0)}


def simulated(job_seconds: float, runs: int) -> dict[str, Any]:
    results = [simulate(job_seconds, DEFAULT_POLL_INTERVAL, seed) for seed in range(runs)]
    gets = [r["gets"] for r in results]
    return {
        "job_seconds": job_seconds,
        "poll_interval": DEFAULT_POLL_INTERVAL,
        "runs": runs,
        "gets_min": min(gets),
        "gets_median": statistics.median(gets),
        "gets_max": max(gets),
        "seen_late_mean_s": statistics.fmean(r["seen_late_s"] for r in results),
        "min_gap_s": min(r["min_gap_s"] for r in results if r["gets"] > 1),
    }


def _job_gets(emulator: VeoEmulator, video_id: str) -> list[float]:
    path = api.video_path(video_id)
    return [r.at for r in emulator.requests if r.method == "GET" and r.path == path]


def real_run(job_seconds: float, poll_interval: float) -> dict[str, Any]:
    """Create a job through the hook and wait for it with the trigger, against the emulator."""
    from airflow_provider_veo.hooks.veo import VeoHook
    from airflow_provider_veo.triggers.veo import VeoTaskTrigger

    with VeoEmulator(scenario=Scenario(seconds_until_done=job_seconds)) as emulator:
        os.environ.update(emulator.env())
        started = time.time()
        job = VeoHook().create_video("A lighthouse at dusk, waves rolling in.")
        created = time.time()  # the deferring operator hands the trigger this read of the job

        async def wait() -> dict[str, Any]:
            trigger = VeoTaskTrigger(job.video_id, poll_interval=poll_interval, status_read_at=created)
            async for event in trigger.run():
                return event.payload
            raise AssertionError("no event")

        event = asyncio.run(wait())
        seen = time.time()
        times = _job_gets(emulator, job.video_id)
        posts = len(emulator.posts)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "job_seconds": job_seconds,
        "poll_interval": poll_interval,
        "event_status": event["status"],
        "event_video_id_ok": event["video_id"] == job.video_id,
        "posts": posts,
        "gets": len(times),
        "min_gap_s": min(gaps, default=0.0),
        "seen_after_s": seen - started,
    }


def storm(status: int, count: int, retry_after: float, path: str, base_delay: float | None) -> dict[str, Any]:
    """The next ``count`` requests fail with ``status``; read a job through the async or sync client.

    ``base_delay`` sets the connection's ``retry_base_delay`` (``None``: the default, 1 s).
    """
    from airflow_provider_veo.hooks.veo import VeoHook

    with VeoEmulator(scenario=Scenario(polls_until_done=0)) as emulator:
        connection = {"conn_type": "veo", "host": emulator.url, "password": emulator.api_key}
        if base_delay is not None:
            connection["extra"] = json.dumps({"retry_base_delay": base_delay})
        os.environ["AIRFLOW_CONN_VEO_DEFAULT"] = json.dumps(connection)
        hook = VeoHook()
        job = hook.create_video("A red kite over a wheat field.")
        if status == 429:
            emulator.scenario = Scenario(polls_until_done=0, rate_limit=count, retry_after=retry_after)
        else:
            emulator.scenario = Scenario(polls_until_done=0, server_errors=[status] * count)
        emulator.reset_records()
        started = time.perf_counter()
        error = None
        try:
            if path == "async":

                async def read() -> VideoJob:
                    async with VeoHook().async_client() as client:
                        return await client.get_video(job.video_id)

                asyncio.run(read())
            else:
                VeoHook().get_video(job.video_id)
        except api.VeoError as exc:
            error = type(exc).__name__
        elapsed = time.perf_counter() - started
        records = [r for r in emulator.requests if r.method == "GET"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(records)]
    return {
        "status": status,
        "client": path,
        "storm": count,
        "retry_after_s": retry_after if status == 429 else None,
        "answers": [r.status for r in records],
        "waited_s": [round(g, 3) for g in gaps],
        "gave_up_with": error,
        "retry_base_delay_s": 1.0 if base_delay is None else base_delay,
        "elapsed_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    retry_after = 0.1 if args.quick else 2.0
    base_delay = 0.05 if args.quick else None
    result: dict[str, Any] = {
        "default_poll_interval": DEFAULT_POLL_INTERVAL,
        "simulated": [
            simulated(60, 200 if args.quick else 2000),
            simulated(360, 200 if args.quick else 2000),
        ],
    }
    # The real run: a 60-second job at the default interval (quick: both scaled down 20x).
    scale = 0.05 if args.quick else 1.0
    result["real"] = real_run(60 * scale, DEFAULT_POLL_INTERVAL * scale)
    result["storms"] = [
        storm(429, 4, retry_after, "async", base_delay),
        storm(429, 4, retry_after, "sync", base_delay),
        storm(429, 6, retry_after, "async", base_delay),
        storm(503, 4, 0.0, "async", base_delay),
    ]
    emit(result)


if __name__ == "__main__":
    main()
