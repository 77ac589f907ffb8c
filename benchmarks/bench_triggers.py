"""N triggers in one asyncio event loop, run the way Airflow's triggerer runs them; one variant per process.

The process creates its jobs on the emulator (another process, given by ``AIRFLOW_CONN_VEO_DEFAULT``),
then starts the triggers as ``TriggerRunner.create_triggers`` does (``await asyncio.sleep(0)`` around
each, a ``greenback`` portal per trigger when installed), each trigger's ``run()`` consumed as an async
generator in its own task. A monitor coroutine sleeps 10 ms in a loop and records how late it wakes:
that lateness is the stall every other coroutine sees. Each event is checked (exactly one, correct) and
timed against its job's end: *on schedule* means no later than 1.1 poll intervals plus two answers'
latency plus 1 s after the job ended. With ``--polls N`` every job completes on its N-th poll instead,
and its event is on schedule when it comes within 10% of N - 1 poll intervals (plus two answers'
latency plus 1 s) of its trigger's start. ``--freeze`` moves the heap built so far (Airflow, the jobs'
setup) out of the garbage collector's sight with ``gc.freeze()``, as a triggerer can after start-up.
It prints its results on one ``RESULT`` line.

The variants, one per process, are in :mod:`trigger_variants`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from airflow.triggers.base import BaseTrigger
from benchlib import cpu_seconds, emit, percentile, rss_bytes
from trigger_variants import VARIANTS, connection, make_trigger

from airflow_provider_veo import api

# Loaded up front, as in a triggerer that has run a Veo trigger before, so that its one-off import is
# not counted as CPU and memory of the triggers measured.
from airflow_provider_veo.hooks import async_client
from airflow_provider_veo.hooks.veo import VeoHook  # noqa: F401

with contextlib.suppress(ImportError):
    # What the triggerer process has loaded: its heap is what a full garbage collection walks.
    import airflow.jobs.triggerer_job_runner  # noqa: F401

try:
    import greenback
except ImportError:  # Older Airflow releases do not install it; the triggerer then skips the portal.
    greenback = None

MONITOR_TICK = 0.010


class _RunQueueClock:
    """Seconds the calling thread has spent runnable but not running (0 where Linux does not say)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def seconds(self) -> float:
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


# ------------------------------------------------------------------------------------------------
# Setup
# ------------------------------------------------------------------------------------------------


def create_jobs(base_url: str, api_key: str, ends: list[float], polls: int = 0) -> list[str]:
    """Create one job per end (epoch seconds); each says it is completed from then on (prompt marker).

    The marker counts from the job's creation, so each job's wait is computed as it is sent: creating
    10,000 jobs takes a while, and the first ones must not end before the triggers start. With
    ``polls``, each job is completed on its ``polls``-th read instead, whenever that comes.
    """
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"

    def create(index: int) -> str:
        wait = max(0.1, ends[index] - time.time())
        marker = f"polls={polls - 1}" if polls else f"wait={wait:.2f}"
        prompt = f"Benchmark clip {index} [emu:{marker}]"
        parts = [("model", (None, "veo3.1-fast")), ("prompt", (None, prompt))]
        response = session.post(base_url + api.VIDEOS_PATH, files=parts, timeout=60)
        response.raise_for_status()
        ends[index] = max(ends[index], time.time())  # a job created late ends late
        return response.json()["id"]

    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(create, range(len(ends))))
    session.close()
    return ids


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


class Bench:
    """One measured run of one variant: the triggers, the monitor and GC callback timing them, the results.

    Everything a run records stays in memory until it ends, so the measuring adds no I/O to the loop.
    """

    def __init__(
        self, args: argparse.Namespace, video_ids: list[str], arrivals: list[float], done_at: list[float]
    ) -> None:
        self.args = args
        self.done_at = done_at
        self.video_ids = video_ids
        self.arrivals = arrivals
        self.events: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        #: When each trigger started (epoch seconds): a job that ended before cannot be seen sooner.
        self.started: dict[str, float] = {}
        self.errors: list[str] = []
        self.stalls: list[tuple[float, float, float]] = []
        self.rss_peak = 0
        self.t0 = 0.0
        self.t0_wall = 0.0
        #: The provider's limit on requests in flight: the most seen in flight, the highest limit set.
        self.in_flight_peak = 0
        self.limit_peak = 0

    async def monitor(self, stop: asyncio.Event) -> None:
        """Sleep 10 ms, again and again; the overshoot is the time the loop was busy elsewhere.

        Besides the wall-clock overshoot it subtracts the time this thread spent runnable but waiting
        for a CPU (``/proc/thread-self/schedstat``), i.e. preempted by other processes: what remains
        is the stall this process caused itself (its callbacks, blocking calls, GC, GIL waits).
        """
        runqueue = _RunQueueClock()
        tick = 0
        while not stop.is_set():
            before, waited_before = time.perf_counter(), runqueue.seconds()
            await asyncio.sleep(MONITOR_TICK)
            after, waited_after = time.perf_counter(), runqueue.seconds()
            overshoot = max(0.0, after - before - MONITOR_TICK)
            own = max(0.0, overshoot - (waited_after - waited_before))
            self.stalls.append((before - self.t0, overshoot, own))
            for shared in async_client._SHARED.get(asyncio.get_running_loop(), {}).values():
                self.in_flight_peak = max(self.in_flight_peak, shared.limit.peak)
                self.limit_peak = max(self.limit_peak, shared.limit.limit)
            tick += 1
            if tick % 10 == 0:
                self.rss_peak = max(self.rss_peak, rss_bytes())
        runqueue.close()

    async def run_trigger(self, trigger: BaseTrigger, video_id: str) -> None:
        """As ``TriggerRunner.run_trigger``: a greenback portal, then every event of ``run()``."""
        self.started[video_id] = time.time()
        if greenback is not None and os.environ.get("AIRFLOW_DISABLE_GREENBACK_PORTAL", "").lower() != "true":
            await greenback.ensure_portal()
        received = self.events.setdefault(video_id, [])
        try:
            async for event in trigger.run():
                received.append((time.perf_counter() - self.t0, event.payload))
        except Exception as exc:
            self.errors.append(f"{video_id}: {type(exc).__name__}: {exc}")

    async def create_triggers(self, batch: list[int], tasks: list[asyncio.Task[None]]) -> None:
        """As ``TriggerRunner.create_triggers``: one trigger per loop pass, two yields around each."""
        for index in batch:
            await asyncio.sleep(0)
            trigger = make_trigger(
                self.args.variant,
                self.video_ids[index],
                self.args.poll_interval,
                self.end_time,
                self.done_at[index],
            )
            await asyncio.sleep(0)
            tasks.append(asyncio.create_task(self.run_trigger(trigger, self.video_ids[index])))

    async def main(self) -> None:
        """Start the triggers as they arrive, wait for all of them (or the timeout), stop the monitor."""
        stop = asyncio.Event()
        monitor = asyncio.create_task(self.monitor(stop))
        tasks: list[asyncio.Task[None]] = []
        order = sorted(range(len(self.video_ids)), key=lambda i: self.arrivals[i])
        while order:
            # The triggerer's main loop picks up new triggers about once a second.
            now = time.perf_counter() - self.t0
            due = [i for i in order if self.arrivals[i] <= now]
            order = order[len(due) :]
            await self.create_triggers(due, tasks)
            if order:
                await asyncio.sleep(1.0)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=self.args.timeout)
        except TimeoutError:
            self.errors.append(f"timed out after {self.args.timeout} s")
        stop.set()
        await monitor

    def _gc_callback(self, phase: str, info: dict[str, int]) -> None:
        """Record each collection's generation, pause and start, to tell GC stalls from the triggers'."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            now = time.perf_counter()
            self.gc_pauses.append((info["generation"], now - self._gc_started, self._gc_started - self.t0))

    def run(self) -> dict[str, Any]:
        """The measured part: baseline RSS, CPU and one full GC first, then the event loop to the end."""
        self.gc_pauses: list[tuple[int, float, float]] = []
        # What one full collection of this process's heap (Airflow and all) costs, before any trigger.
        cpu_before = time.thread_time()
        gc.collect()
        self.full_gc_ms = (time.thread_time() - cpu_before) * 1000
        if self.args.freeze:
            gc.freeze()  # what a triggerer can do once started: its own heap is never walked again
        gc.callbacks.append(self._gc_callback)
        rss0 = rss_bytes()
        self.rss_peak = rss0
        cpu0 = cpu_seconds()
        self.t0, self.t0_wall = time.perf_counter(), time.time()
        self.end_time = time.time() + self.args.timeout + 60
        asyncio.run(self.main())
        wall = time.perf_counter() - self.t0
        cpu = cpu_seconds() - cpu0
        self.rss_peak = max(self.rss_peak, rss_bytes())
        gc.callbacks.remove(self._gc_callback)
        return self.results(wall, cpu, rss0)

    def _overlaps_gen2(self, tick_start: float, overshoot: float) -> bool:
        """Whether a monitor tick overlaps a full (generation 2) garbage collection."""
        tick_end = tick_start + MONITOR_TICK + overshoot
        return any(
            gen == 2 and start < tick_end and start + pause > tick_start
            for gen, pause, start in self.gc_pauses
        )

    def results(self, wall: float, cpu: float, rss0: int) -> dict[str, Any]:
        """Events checked one by one, stall statistics (wall and own), CPU, memory and GC, as one dict."""
        correct = wrong = 0
        last_event = 0.0
        ideal = (self.args.polls - 1) * self.args.poll_interval
        lateness = []
        for index, video_id in enumerate(self.video_ids):
            received = self.events.get(video_id, [])
            if received:
                last_event = max(last_event, received[0][0])
                started = self.started.get(video_id, 0.0)
                # Done on its N-th poll: due N - 1 poll intervals after its trigger started.
                seen_from = started + ideal if self.args.polls else max(self.done_at[index], started)
                lateness.append(self.t0_wall + received[0][0] - seen_from)
            payload = received[0][1] if len(received) == 1 else {}
            ok = (
                payload.get("status") == "success"
                and payload.get("video_id") == video_id
                and (payload.get("job") or {}).get("video_id") == video_id
                and (payload.get("job") or {}).get("status") == "completed"
            )
            correct += ok
            wrong += not ok
        # A poll may start just before the job ends: its answer, the jittered sleep, the next answer.
        allowed_lateness = 1.1 * self.args.poll_interval + 2 * self.args.latency + 1.0
        if self.args.polls:  # the N-th poll within 10% of N - 1 intervals of the trigger's start
            allowed_lateness = 0.1 * ideal + 2 * self.args.latency + 1.0
        n = len(self.video_ids)
        burst_window = self.args.poll_interval * 1.2 + max(self.arrivals)
        ms = 1000.0
        stats: dict[str, float] = {}
        for name, column in (("", 1), ("_own", 2)):
            overall = [row[column] for row in self.stalls]
            startup = [row[column] for row in self.stalls if row[0] < burst_window]
            steady = [row[column] for row in self.stalls if row[0] >= burst_window]
            stats |= {
                f"stall{name}_max_ms": max(overall, default=0.0) * ms,
                f"stall{name}_max_startup_ms": max(startup, default=0.0) * ms,
                f"stall{name}_max_steady_ms": max(steady, default=0.0) * ms,
                f"stall{name}_p99_ms": percentile(overall, 0.99) * ms,
                f"stall{name}_p99_steady_ms": percentile(steady, 0.99) * ms,
                f"stall{name}_p50_ms": percentile(overall, 0.50) * ms,
            }
        return {
            "variant": self.args.variant,
            "arrival": self.args.arrival,
            "n": n,
            "correct_events": correct,
            "wrong_or_missing_events": wrong,
            "errors": self.errors[:5],
            "wall_to_all_events_s": last_event,
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_percent": 100.0 * cpu / last_event if last_event else 0.0,
            "rss_delta_kb_per_trigger": (self.rss_peak - rss0) / 1024 / n,
            **stats,
            "monitor_samples": len(self.stalls),
            "gc_collections": [sum(1 for g, _, _ in self.gc_pauses if g == gen) for gen in range(3)],
            "gc_max_pause_ms": [
                max((d for g, d, _ in self.gc_pauses if g == gen), default=0.0) * ms for gen in range(3)
            ],
            "full_gc_before_ms": self.full_gc_ms,
            "frozen": bool(self.args.freeze),
            "poll_interval": self.args.poll_interval,
            "latency": self.args.latency,
            "polls": self.args.polls,
            "ideal_s": ideal if self.args.polls else None,
            # From the run's start to the last trigger's: a burst of 10,000 takes a moment to start.
            "start_spread_s": max(self.started.values(), default=self.t0_wall) - self.t0_wall,
            "lateness_max_s": max(lateness, default=float("nan")),
            "lateness_p99_s": percentile(lateness, 0.99),
            "lateness_allowed_s": allowed_lateness,
            "late_events": sum(late > allowed_lateness for late in lateness),
            "on_schedule": len(lateness) == n and all(late <= allowed_lateness for late in lateness),
            "in_flight_peak": self.in_flight_peak,
            "limit_peak": self.limit_peak,
            "stall_own_max_outside_gen2_ms": max(
                (own for t, wall, own in self.stalls if not self._overlaps_gen2(t, wall)), default=0.0
            )
            * ms,
            "steady_window_starts_s": burst_window,
            "worst_stalls": sorted(
                ((round(t, 2), round(s * ms, 1), round(c * ms, 1)) for t, s, c in self.stalls),
                key=lambda row: -row[1],
            )[:10],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="provider")
    parser.add_argument("--arrival", choices=("burst", "ramp"), default="burst")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=10.0)
    parser.add_argument("--wait-min", type=float, default=10.0)
    parser.add_argument("--wait-max", type=float, default=60.0)
    parser.add_argument("--ramp-seconds", type=float, default=10.0, help="arrivals spread over this")
    parser.add_argument(
        "--polls", type=int, default=0, help="every job completes on this poll (0: after wait-min..max s)"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.05, help="the emulator's, for the schedule check")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() before the triggers start")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    arrivals = [0.0 if args.arrival == "burst" else rng.uniform(0, args.ramp_seconds) for _ in range(args.n)]
    # The triggers start once every job exists (creating them is given about 1 s per 150); each job
    # ends wait-min..wait-max seconds after its trigger starts.
    start_at = time.time() + max(2.0, args.n / 150)
    ends = [start_at + a + rng.uniform(args.wait_min, args.wait_max) for a in arrivals]
    base_url, api_key = connection()
    video_ids = create_jobs(base_url, api_key, ends, args.polls)
    time.sleep(max(0.0, start_at - time.time()))
    bench = Bench(args, video_ids, arrivals, ends)
    if os.environ.get("BENCH_PROFILE"):  # A developer's aid: cProfile of the measured part only.
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU of the loop thread, not waits
        result = profiler.runcall(bench.run)
        profiler.dump_stats(os.environ["BENCH_PROFILE"])
    else:
        result = bench.run()
    emit(result)


if __name__ == "__main__":
    main()
