"""The targets, each section's verdicts against them, and the notes that explain a missed one.

The goals live in :data:`TARGETS` only; every verdict reads the same medians as the tables
(``tables.py``). A row marked *(information)* is judged against a goal but is not itself a target.
"""

from __future__ import annotations

from typing import Any

from benchlib import fmt, median, table
from tables import (
    MIB,
    by_size,
    over_curl_ms,
    ratio_to_curl,
    ratio_to_hashing_curl,
    scenario_label,
    scenario_specs,
    trigger_medians,
)

TARGETS = {
    # 10,000 triggers at a 15 s poll in one loop
    "10k_cpu_percent": 50.0,
    "10k_cpu_percent_stretch": 35.0,
    "10k_p99_ms": 25.0,
    "10k_kb_per_trigger": 10.0,
    # 1,000 at a 10 s poll
    "1k_cpu_percent": 10.0,
    "burst_frozen_stall_ms": 100.0,
    # downloads into tmpfs, against curl
    "download_ratio": 0.9,
    "download_ratio_stretch": 1.0,
    "download_growth_mib": 16.0,
    # a small clip (up to this many MiB) is judged on its time over curl's
    "download_small_mib": 16,
    "download_small_over_curl_ms": 30.0,
    # what stays
    "gets_6min": 25,
    "parse_added_ms": 50.0,
}


def _row(name: str, value: float | None, goal: str, met: bool, margin: str) -> list[str]:
    """A row of the targets table; ``value`` None for a yes/no target."""
    return [name, "n/a" if value is None else fmt(value, 2), goal, "met" if met else "MISSED", margin]


def _limit(
    name: str, value: float, op: str, goal: float, digits: int | None = 0, unit: str = ""
) -> list[str]:
    """A row for ``value op goal`` (``<``, ``<=`` or ``>=``); the margin, how far inside the goal it is,
    with ``digits`` and ``unit`` (no margin for ``digits=None``)."""
    met = {"<": value < goal, "<=": value <= goal, ">=": value >= goal}[op]
    margin = ""
    if digits is not None:
        margin = f"{value - goal if op == '>=' else goal - value:+.{digits}f}" + (f" {unit}" if unit else "")
    return _row(name, value, f"{op} {goal:g}", met, margin)


# ------------------------------------------------------------------------------------------------
# Verdicts, per section
# ------------------------------------------------------------------------------------------------


def trigger_targets(results: dict[str, Any]) -> list[list[str]]:
    """10,000 at 15 s; 1,000 at 10 s (steady CPU, frozen burst stall); 1,000 at 500 ms; every event."""
    rows: list[list[str]] = []
    medians = trigger_medians(results["triggers"])
    specs = scenario_specs(results)

    def ours(name: str) -> dict[str, Any] | None:
        return medians.get((name, "provider")) if name in specs else None

    def on_schedule(name: str, m: dict[str, Any]) -> list[str]:
        return _row(
            f"{scenario_label(specs[name])}: every event on schedule (latest after its job, s)",
            m["lateness_max_s"],
            f"<= {m['lateness_allowed_s']:.1f} s, all {m['n']:.0f}",
            m["all_on_schedule"] and m["all_correct"],
            f"{m['late_events']:.0f} late, {m['n'] - m['correct_min']:.0f} wrong or missing",
        )

    if big := ours("10k"):
        label = scenario_label(specs["10k"])
        rows.append(on_schedule("10k", big))
        rows.append(
            _limit(
                f"{label}: CPU, % of one core",
                big["cpu_percent"],
                "<=",
                TARGETS["10k_cpu_percent"],
                1,
                "points",
            )
        )
        rows.append(
            _limit(
                f"{label}: CPU, % of one core (stretch)",
                big["cpu_percent"],
                "<=",
                TARGETS["10k_cpu_percent_stretch"],
                1,
                "points",
            )
        )
        rows.append(
            _limit(
                f"{label}: p99 event-loop stall, ms (own)",
                big["stall_own_p99_ms"],
                "<=",
                TARGETS["10k_p99_ms"],
                1,
                "ms",
            )
        )
        rows.append(
            _limit(
                f"{label}: memory per trigger, KB",
                big["rss_delta_kb_per_trigger"],
                "<=",
                TARGETS["10k_kb_per_trigger"],
                1,
                "KB",
            )
        )
        rows.append(
            _row(
                f"{label}: longest stall, ms (information: cause in the notes)",
                big["stall_own_max_ms"],
                "reported",
                True,
                f"gen-2 GC {fmt(big['gc_gen2_max_pause_ms'], 0)} ms; outside: "
                f"{fmt(big['stall_own_max_outside_gen2_ms'], 0)} ms",
            )
        )
    if steady := ours("1k"):
        label = scenario_label(specs["1k"])
        rows.append(on_schedule("1k", steady))
        rows.append(
            _limit(
                f"{label}: CPU, % of one core",
                steady["cpu_percent"],
                "<=",
                TARGETS["1k_cpu_percent"],
                1,
                "points",
            )
        )
    if frozen := ours("1k-burst-frozen"):
        label = scenario_label(specs["1k-burst-frozen"])
        rows.append(on_schedule("1k-burst-frozen", frozen))
        rows.append(
            _limit(
                f"{label}: longest event-loop stall, ms (own; wall in the margin)",
                frozen["stall_own_max_ms"],
                "<",
                TARGETS["burst_frozen_stall_ms"],
                unit=f"ms (wall {frozen['stall_max_ms']:.0f})",
            )
        )
    if slow := ours("1k-500ms"):
        label = scenario_label(specs["1k-500ms"])
        rows.append(on_schedule("1k-500ms", slow))
        from_bound = results.get("in_flight_bound")
        rows.append(
            _row(
                f"{label}: most requests in flight (bound: {from_bound})",
                slow["in_flight_peak"],
                f"<= {from_bound}",
                from_bound is not None and slow["in_flight_peak"] <= from_bound,
                f"limit reached {fmt(slow['limit_peak'], 0)}",
            )
        )
    bound = results.get("in_flight_bound") or 64
    for name, spec in specs.items():
        if spec.get("polls") and (m := ours(name)):
            rows.append(on_schedule(name, m))
            ideal = m["ideal_s"]
            # The last trigger starts a moment after the first: its N-th poll is due that much later.
            spread = m.get("start_spread_s", 0.0)
            goal = 1.1 * ideal + 2 * spec["latency"] + 1 + spread
            rows.append(
                _row(
                    f"{scenario_label(spec)}: wall time to the last event, s (against "
                    f"{spec['polls'] - 1} x {spec['poll_interval']:g} s)",
                    m["wall_to_all_events_s"],
                    f"<= {goal:.1f} s",
                    m["wall_to_all_events_s"] <= goal,
                    f"{m['wall_to_all_events_s'] / ideal:.2f} x {ideal:g} s; the last trigger started "
                    f"{spread:.1f} s after the first; the in-flight bound alone spreads {spec['n']:,} polls "
                    f"over {spec['n'] * spec['latency'] / bound:.1f} s",
                )
            )
    provider = [m for (name, variant), m in medians.items() if variant == "provider" and name in specs]
    if provider:
        correct = all(m["all_correct"] for m in provider)
        rows.append(
            _row(
                "every trigger yields exactly one correct event, every scenario",
                None,
                "all runs",
                correct,
                "",
            )
        )
    return rows


def download_targets(results: dict[str, Any]) -> list[list[str]]:
    """Per size into tmpfs: throughput against curl's (and the stretch), peak memory growth, sha256;
    the disk's figure as information."""
    rows = []
    data = results["download"]
    for size, runs in by_size(data["runs"]).items():
        if size <= TARGETS["download_small_mib"] * MIB:  # a small clip: what counts is the fixed cost
            name = f"download {size // MIB} MiB into tmpfs: time over curl's, ms"
            rows.append(
                _limit(name, over_curl_ms(runs), "<=", TARGETS["download_small_over_curl_ms"], 0, "ms")
            )
        else:
            ratio = ratio_to_curl(runs)
            name = f"download {size // MIB} MiB into tmpfs: throughput / curl's"
            rows.append(_limit(name, ratio, ">=", TARGETS["download_ratio"], 2))
            rows.append(_limit(name + " (stretch)", ratio, ">=", TARGETS["download_ratio_stretch"], 2))
        growth = max(run["hook"]["peak_growth_mib"] for run in runs)
        name = f"download {size // MIB} MiB: peak RSS growth (MiB)"
        rows.append(_limit(name, growth, "<=", TARGETS["download_growth_mib"], 1, "MiB"))
        hashed = all(run["hook"]["sha256_ok"] for run in runs)
        rows.append(
            _row(f"download {size // MIB} MiB: sha256 of every byte matches", None, "every run", hashed, "")
        )
    for size, runs in by_size(data.get("disk_runs", [])).items():
        where = data.get("disk_kind", "disk")
        name = f"download {size // MIB} MiB onto {where}: throughput / curl's (information)"
        rows.append(_limit(name, ratio_to_curl(runs), ">=", TARGETS["download_ratio"], 2))
    return rows


def api_targets(results: dict[str, Any]) -> list[list[str]]:
    """GETs for a 6-minute job, the shortest gap between GETs, and Retry-After in every 429 storm."""
    rows = []
    data = results["api"]
    sims = {sim["job_seconds"]: sim for sim in data["simulated"]}
    if 360 in sims:
        name = "GETs for a 6-minute job after its create (worst of the seeds)"
        rows.append(_limit(name, sims[360]["gets_max"], "<=", TARGETS["gets_6min"]))
    gap = min(sim["min_gap_s"] for sim in data["simulated"])
    name = "no GET sooner than 0.9 poll intervals after the last (shortest gap, s)"
    rows.append(_limit(name, gap, ">=", 0.9 * data["default_poll_interval"], None))
    honoured = all(
        all(wait >= storm["retry_after_s"] for wait in storm["waited_s"])
        for storm in data["storms"]
        if storm["status"] == 429
    )
    rows.append(_row("Retry-After honoured on every 429", None, "every wait >= Retry-After", honoured, ""))
    if "triggers" in results:
        leaked = sum(run.get("cdn_requests_with_key", 0) for run in results["triggers"])
        rows.append(
            _row(
                "requests with the key to a host other than the API's (all trigger runs)",
                leaked,
                "0",
                leaked == 0,
                "",
            )
        )
    return rows


def parse_targets(results: dict[str, Any]) -> list[list[str]]:
    """CPU that importing the operators and the sensor adds to a DAG parse."""
    value = results["parse"]["in_process_cpu_median_ms"]
    name = "DAG parse: added by importing operators + sensor (ms CPU)"
    return [_limit(name, value, "<=", TARGETS["parse_added_ms"], unit="ms")]


#: Section key -> its verdicts, in the order of the docs.
SECTION_TARGETS = {
    "triggers": trigger_targets,
    "download": download_targets,
    "api": api_targets,
    "parse": parse_targets,
}


def render_targets(results: dict[str, Any]) -> str:
    """The targets table of every measured section."""
    rows = [row for key, verdicts in SECTION_TARGETS.items() if key in results for row in verdicts(results)]
    return table(["target", "measured", "goal", "verdict", "margin"], rows)


# ------------------------------------------------------------------------------------------------
# Capacity and notes
# ------------------------------------------------------------------------------------------------


def capacity(results: dict[str, Any]) -> str | None:
    """What one poll costs the triggerer, from the 10,000-trigger run against its calibration."""
    if "triggers" not in results:
        return None
    medians = trigger_medians(results["triggers"])
    for name in ("10k", "1k"):
        ours, idle = medians.get((name, "provider")), medians.get((name, "idle"))
        if ours:
            break
    else:
        return None
    gets = ours["gets_per_job_mean"] * ours["n"]
    harness = idle["cpu_s"] if idle else 0.0
    per_get_ms = (ours["cpu_s"] - harness) / gets * 1000 if gets else float("nan")
    spec = scenario_specs(results)[name]
    return (
        f"{int(ours['n']):,} triggers polling every {spec['poll_interval']:g} s took "
        f"{fmt(ours['cpu_percent'])}% of one core ({fmt(ours['cpu_s'])} s of CPU, of which "
        f"{fmt(harness)} s are the triggerer-like harness itself: the calibration row), "
        f"{fmt(ours['rss_delta_kb_per_trigger'])} KB of memory each, and about {fmt(per_get_ms, 2)} ms of "
        "CPU per poll beyond the harness, start-up included, on this machine. CPU grows with polls per "
        "second (triggers / poll interval), memory with the number of triggers."
    )


def notes(results: dict[str, Any]) -> list[str]:
    """Why each missed target was missed, what the longest stalls are, in this run's own numbers."""
    out: list[str] = []
    if "triggers" in results:
        out += filter(None, [_stall_note(results), _cpu_note(results), _bound_note(results)])
        if note := _memory_note(results):
            out.append(note)
    if "download" in results:
        out += _download_notes(results["download"])
    return out


def _memory_note(results: dict[str, Any]) -> str | None:
    """A missed memory target: how much of it is the harness (calibration row) and what is ours."""
    medians = trigger_medians(results["triggers"])
    ours, idle = medians.get(("10k", "provider")), medians.get(("10k", "idle"))
    if not ours or ours["rss_delta_kb_per_trigger"] <= TARGETS["10k_kb_per_trigger"]:
        return None
    text = (
        f"*Memory.* {fmt(ours['rss_delta_kb_per_trigger'])} KB per trigger, "
        f"{fmt(ours['rss_delta_kb_per_trigger'] - TARGETS['10k_kb_per_trigger'])} KB over the goal"
    )
    if idle:
        text += (
            f", of which {fmt(idle['rss_delta_kb_per_trigger'])} KB are the harness's own (the calibration "
            "row: the trigger object, its task, its greenback portal, its sleep), leaving "
            f"{fmt(ours['rss_delta_kb_per_trigger'] - idle['rss_delta_kb_per_trigger'])} KB for what a "
            "VeoTaskTrigger keeps while it waits: its JobWatch, its structured logger (Airflow's), its hook "
            "and client, its URL, and its share of the peak of requests in flight"
        )
    return text + (
        ". Tried: one connection read and one session per loop, a slotted context manager instead of "
        "a generator, the hook's logger made only on a retry, no per-trigger dict of URLs (an earlier run, "
        "before the last of these, measured 9.9 KB)."
    )


def _download_notes(data: dict[str, Any]) -> list[str]:
    """A download that missed its target (a small clip's time over curl's, a larger one's ratio to
    curl's speed): the machine's other load, the CPU spent, and the disk's fsync."""
    out = []
    for size, runs in by_size(data["runs"]).items():
        paired = [run for run in runs if run["curl"]]
        if not paired:
            continue
        if size <= TARGETS["download_small_mib"] * MIB:
            over, goal = over_curl_ms(paired), TARGETS["download_small_over_curl_ms"]
            if over <= goal:
                continue
            pairs = ", ".join(
                f"{(run['hook']['seconds'] - run['curl']['seconds']) * 1000:.0f}" for run in paired
            )
            missed = (
                f"The pairs took {pairs} ms longer than curl (median {fmt(over, 0)}, "
                f"{fmt(over - goal, 0)} ms over the goal)"
            )
        else:
            ratio, goal = ratio_to_curl(paired), TARGETS["download_ratio"]
            if ratio >= goal:
                continue
            ratios = ", ".join(f"{run['hook']['mib_per_s'] / run['curl']['mib_per_s']:.2f}" for run in paired)
            missed = (
                f"The pairs' ratios were {ratios} (median {fmt(ratio, 2)}, "
                f"{fmt(goal - ratio, 2)} under the goal)"
            )
        cpu = median([run["hook"]["cpu_seconds"] for run in paired])
        hashing = [run["hook"]["sha256_alone_cpu_s"] for run in paired if "sha256_alone_cpu_s" in run["hook"]]
        hash_part = (
            f" SHA-256 alone takes {fmt(median(hashing), 3)} s of one core for this size here, work curl "
            "does not do, on the same 2 cores as the emulator sending and the thread receiving."
            if hashing
            else ""
        )
        like_for_like = ratio_to_hashing_curl(paired)
        if like_for_like == like_for_like:  # not NaN
            tool = data.get("sha256_tool", "sha256sum")
            hash_part += (
                f" Against curl followed by `{tool}` on the file, the same bytes hashed, download_video was"
                f" {fmt(like_for_like, 2)}x as fast."
            )
        out.append(
            f"*Download {size // MIB} MiB.* {missed}, with "
            f"{fmt(median([run['other_load_cores'] for run in paired]), 2)} of the 2 "
            f"cores taken by other processes; download_video spent {fmt(cpu, 2)} "
            f"s of CPU (two threads) in {fmt(median([run['hook']['seconds'] for run in paired]), 2)} s, curl "
            f"{fmt(median([run['curl']['seconds'] for run in paired]), 2)} s.{hash_part} Where its time "
            "went is in the download section's second table."
        )
    if disk := data.get("disk_runs"):
        out.append(
            f"*Download onto the disk.* {fmt(ratio_to_curl(disk), 2)} of curl's speed: download_video "
            "fsyncs the file before renaming it (a published video must survive a crash), which waits "
            "for the disk; `curl -o` does not fsync, so its figure is the page cache's."
        )
    return out


def _stall_note(results: dict[str, Any]) -> str | None:
    """The longest stalls are full (generation-2) garbage collections: say so, with and without freeze."""
    medians, specs = trigger_medians(results["triggers"]), scenario_specs(results)
    big, burst, frozen = (medians.get((name, "provider")) for name in ("10k", "1k-burst", "1k-burst-frozen"))
    parts = []
    if big and big["gc_gen2"] and big["stall_own_max_outside_gen2_ms"] < big["stall_own_max_ms"]:
        parts.append(
            f"at {scenario_label(specs['10k'])} the longest stall ({fmt(big['stall_own_max_ms'], 0)} ms) "
            f"is a full collection ({fmt(big['gc_gen2'], 0)} per run, the longest "
            f"{fmt(big['gc_gen2_max_pause_ms'], 0)} ms of wall time), which walks every live trigger's "
            "objects whatever the client; outside them the longest stall was "
            f"{fmt(big['stall_own_max_outside_gen2_ms'], 0)} ms"
        )
    elif big:
        parts.append(
            f"at {scenario_label(specs['10k'])} the longest stall was {fmt(big['stall_own_max_ms'], 0)} "
            "ms, with no full collection under it"
        )
    if burst and frozen:
        parts.append(
            f"a burst of {burst['n']:,.0f} stalled the loop {fmt(burst['stall_own_max_ms'], 0)} ms at most "
            f"({fmt(burst['gc_gen2'], 0)} full collections; one of this process's heap before any trigger "
            f"takes {fmt(burst['full_gc_before_ms'], 0)} ms) and {fmt(frozen['stall_own_max_ms'], 0)} ms "
            f"with the heap frozen ({fmt(frozen['gc_gen2'], 0)} full collections), `gc.freeze()` being "
            "what a triggerer can do after start-up to keep Airflow's own objects out of every full "
            "collection (the provider cannot do it for the process)"
        )
    steady = {
        variant: medians.get(("1k", variant))
        for variant in ("provider", "httpx-shared", "client-per-trigger")
    }
    if steady["provider"] and steady["httpx-shared"]:
        text = (
            f"at 1,000 triggers VeoTaskTrigger's runs set off {fmt(steady['provider']['gc_gen2'], 0)} full "
            f"collections, the previous design {fmt(steady['httpx-shared']['gc_gen2'], 0)} (up to "
            f"{fmt(steady['httpx-shared']['gc_gen2_max_pause_ms'], 0)} ms)"
        )
        if other := steady["client-per-trigger"]:
            text += (
                f" and one client per trigger {fmt(other['gc_gen2'], 0)} (up to "
                f"{fmt(other['gc_gen2_max_pause_ms'], 0)} ms)"
            )
        parts.append(text + ": fewer objects allocated per poll means fewer promoted to the old generation")
    if not parts:
        return None
    return (
        "*Stalls.* " + "; ".join(parts) + ". The provider's share is what each trigger keeps alive and "
        "allocates per poll: one session, limit and connection read per loop instead of per trigger, "
        "no log line per progress tick, no generator per answered poll."
    )


def _cpu_note(results: dict[str, Any]) -> str | None:
    """Where the 10,000-trigger CPU goes: harness, library floor, provider, the old design."""
    medians = trigger_medians(results["triggers"])
    ours, idle = medians.get(("10k", "provider")), medians.get(("10k", "idle"))
    bare, before = medians.get(("10k", "aiohttp-bare")), medians.get(("10k", "httpx-shared"))
    if not ours:
        return None
    label = scenario_label(scenario_specs(results)["10k"])
    text = f"*CPU at {label}.* VeoTaskTrigger used {fmt(ours['cpu_s'])} s ({fmt(ours['cpu_percent'])}%)"
    if idle:
        text += f"; the harness alone (no HTTP) {fmt(idle['cpu_s'])} s"
    if bare:
        text += f"; a bare shared aiohttp session with no limit, retry or scrubbing {fmt(bare['cpu_s'])} s"
    if before:
        late = (
            "on schedule"
            if before["all_on_schedule"]
            else f"events up to {fmt(before['lateness_max_s'], 0)} s late"
        )
        text += f"; the previous design (shared httpx, 8 in flight) {fmt(before['cpu_s'])} s, {late}"
    return text + "."


def _bound_note(results: dict[str, Any]) -> str | None:
    """The in-flight bound and why, with the 500 ms run's figures."""
    medians = trigger_medians(results["triggers"])
    slow, before = medians.get(("1k-500ms", "provider")), medians.get(("1k-500ms", "httpx-shared"))
    if not slow:
        return None
    spec = scenario_specs(results)["1k-500ms"]
    text = (
        f"*Requests in flight.* At most {results.get('in_flight_bound')} per event loop and connection, "
        "and within that 2 x the triggers' polls per second x the API's latency (a moving average), never "
        "under 8: the rate it lets through is about twice what the triggers need however slow the API "
        "gets, and a burst of first polls is spread only as much as the limit needs. "
        f"{spec['n']:,} triggers at {spec['poll_interval']:g} s and {spec['latency'] * 1000:.0f} ms need "
        f"{spec['n'] / spec['poll_interval'] * spec['latency']:.0f} in flight on average; the limit reached "
        f"{fmt(slow['limit_peak'], 0)} and {fmt(slow['in_flight_peak'], 0)} were in flight at most"
    )
    if before:
        text += (
            f"; the old fixed 8 (16 GETs/s at 500 ms) let events come up to "
            f"{fmt(before['lateness_max_s'], 0)} s after their job ended ({fmt(before['gets_per_job_mean'])} "
            f"GETs per job instead of {fmt(slow['gets_per_job_mean'])})"
        )
    return text + "."
