"""The targets, each section's verdicts against them, and the notes that explain a missed one.

The goals live in :data:`TARGETS` only; every verdict reads the same medians as the tables
(``tables.py``). A row marked *(information)* is judged against a goal but is not itself a target.
"""

from __future__ import annotations

from typing import Any

from benchlib import fmt, median, table
from tables import MIB, SCENARIO_NAMES, by_size, ratio_to_curl, trigger_medians

TARGETS = {
    "burst_stall_ms": 100.0,
    "steady_p99_ms": 20.0,
    "cpu_percent": 10.0,
    "kb_per_trigger": 50.0,
    "download_ratio": 0.9,
    "download_growth_mib": 50.0,
    "gets_6min": 25,
    "parse_added_ms": 100.0,
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
    """Stalls and CPU of VeoTaskTrigger (burst, and steady when it ran), its memory, its events."""
    rows = []
    medians = trigger_medians(results["triggers"])
    burst = medians.get(("burst", "provider"))
    steady = medians.get(("steady", "provider")) or burst
    cpu_goal = TARGETS["cpu_percent"]
    if burst:
        rows.append(
            _limit(
                "burst: longest event-loop stall, ms (own; wall clock in the margin)",
                burst["stall_own_max_ms"],
                "<",
                TARGETS["burst_stall_ms"],
                unit=f"ms (wall {burst['stall_max_ms']:.0f})",
            )
        )
        rows.append(
            _limit(
                "burst: longest stall outside gen-2 garbage collections, ms (information)",
                burst["stall_own_max_outside_gen2_ms"],
                "<",
                TARGETS["burst_stall_ms"],
                unit="ms",
            )
        )
    if steady:
        rows.append(
            _limit(
                "steady: p99 event-loop stall after start-up, ms (own; wall in the margin)",
                steady["stall_own_p99_steady_ms"],
                "<",
                TARGETS["steady_p99_ms"],
                1,
                f"ms (wall {steady['stall_p99_steady_ms']:.1f})",
            )
        )
        rows.append(_limit("steady: CPU, % of one core", steady["cpu_percent"], "<=", cpu_goal, 1, "points"))
    for scenario in ("burst", "steady-https"):
        if other := medians.get((scenario, "provider")):
            name = f"{SCENARIO_NAMES[scenario]}: CPU, % of one core (information)"
            rows.append(_limit(name, other["cpu_percent"], "<=", cpu_goal, 1, "points"))
    provider = [m for (_, variant), m in medians.items() if variant == "provider"]
    if provider:
        rows.append(
            _limit(
                "memory per trigger, KB (RSS growth / N, worst scenario)",
                max(m["rss_delta_kb_per_trigger"] for m in provider),
                "<=",
                TARGETS["kb_per_trigger"],
                1,
                "KB",
            )
        )
        correct = all(m["all_correct"] for m in provider)
        rows.append(_row("every trigger yields exactly one correct event", None, "all runs", correct, ""))
    return rows


def download_targets(results: dict[str, Any]) -> list[list[str]]:
    """Per size: throughput against curl's, and the peak memory growth of the worst run."""
    rows = []
    for size, runs in by_size(results["download"]["runs"]).items():
        ratio = ratio_to_curl(runs)
        rows.append(
            _limit(
                f"download {size // MIB} MiB: throughput / curl's", ratio, ">=", TARGETS["download_ratio"], 2
            )
        )
        growth = max(run["hook"]["peak_growth_mib"] for run in runs)
        name = f"download {size // MIB} MiB: peak RSS growth (MiB)"
        rows.append(_limit(name, growth, "<", TARGETS["download_growth_mib"], 1, "MiB"))
    return rows


def api_targets(results: dict[str, Any]) -> list[list[str]]:
    """GETs for a 6-minute job, the shortest gap between GETs, and Retry-After in every 429 storm."""
    rows = []
    data = results["api"]
    sims = {sim["job_seconds"]: sim for sim in data["simulated"]}
    if 360 in sims:
        name = "GETs for a 6-minute job (worst of the seeds)"
        rows.append(_limit(name, sims[360]["gets_max"], "<=", TARGETS["gets_6min"]))
    gap = min(sim["min_gap_s"] for sim in data["simulated"])
    name = "at most one GET per poll interval (shortest gap, s)"
    rows.append(_limit(name, gap, ">=", data["default_poll_interval"], None))
    honoured = all(
        all(wait >= storm["retry_after_s"] for wait in storm["waited_s"])
        for storm in data["storms"]
        if storm["status"] == 429
    )
    rows.append(_row("Retry-After honoured on every 429", None, "every wait >= Retry-After", honoured, ""))
    return rows


def parse_targets(results: dict[str, Any]) -> list[list[str]]:
    """CPU that importing the operators and the sensor adds to a DAG parse."""
    value = results["parse"]["added_cpu_median_ms"]
    name = "DAG parse: added by importing operators + sensor (ms CPU)"
    return [_limit(name, value, "<", TARGETS["parse_added_ms"], unit="ms")]


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
    """What one trigger costs the triggerer, from the steady run: CPU per poll, memory, stalls."""
    if "triggers" not in results:
        return None
    medians = trigger_medians(results["triggers"])
    ours, idle = medians.get(("steady", "provider")), medians.get(("steady", "idle"))
    if not ours:
        return None
    spec = results["config"]["triggers"]
    gets = ours["gets_per_job_mean"] * ours["n"]
    harness = idle["cpu_s"] if idle else 0.0
    per_get_ms = (ours["cpu_s"] - harness) / gets * 1000 if gets else float("nan")
    return (
        f"{int(ours['n'])} triggers polling every {spec['poll_interval']:g} s took "
        f"{fmt(ours['cpu_percent'])}% of one core (of which "
        f"{fmt(idle['cpu_percent'] if idle else float('nan'))} points are the triggerer-like harness "
        "itself), "
        f"{fmt(ours['rss_delta_kb_per_trigger'])} KB of memory each, and about {fmt(per_get_ms, 2)} ms of "
        "CPU per poll, start-up included, on this machine. CPU grows with polls per second "
        "(triggers / poll interval), memory with the number of triggers."
    )


def notes(results: dict[str, Any]) -> list[str]:
    """Why each missed target was missed, in this run's own numbers."""
    out: list[str] = []
    if "triggers" in results:
        medians = trigger_medians(results["triggers"])
        out += filter(None, [_burst_stall_note(medians), _cpu_note(medians)])
    if "download" in results and (note := _download_note(results["download"]["runs"])):
        out.append(note)
    return out


def _burst_stall_note(medians: dict[tuple[str, str], dict[str, Any]]) -> str | None:
    """A missed burst stall is a full GC of Airflow's heap: say so, with the stall outside them."""
    burst, per_trigger = medians.get(("burst", "provider")), medians.get(("burst", "client-per-trigger"))
    if not burst or burst["stall_own_max_ms"] < TARGETS["burst_stall_ms"]:
        return None
    text = (
        f"*Burst stall.* The longest stall ({fmt(burst['stall_own_max_ms'], 0)} ms) is a full "
        f"(generation-2) garbage collection ({fmt(burst['gc_gen2'], 0)} per run, the longest "
        f"{fmt(burst['gc_gen2_max_pause_ms'], 0)} ms): about what one full collection of the same "
        "process takes before any trigger exists "
        f"({fmt(burst['full_gc_before_ms'], 0)} ms), i.e. the cost of walking Airflow's own objects "
        "on this CPU, whichever triggers set it off. Outside those collections the longest stall was "
        f"{fmt(burst['stall_own_max_outside_gen2_ms'], 0)} ms."
    )
    if per_trigger:
        text += (
            f" With one client per trigger (c) there were {fmt(per_trigger['gc_gen2'], 0)} full collections "
            f"per run and {fmt(per_trigger['stall_own_max_outside_gen2_ms'], 0)} ms outside them."
        )
    return text


def _cpu_note(medians: dict[tuple[str, str], dict[str, Any]]) -> str | None:
    """Missed CPU: how much is the harness (calibration row) and how much the polling rate."""
    steady, idle = medians.get(("steady", "provider")), medians.get(("steady", "idle"))
    thread = medians.get(("steady", "thread"))
    if not steady or steady["cpu_percent"] <= TARGETS["cpu_percent"]:
        return None
    text = f"*CPU.* {fmt(steady['cpu_percent'])}% of a core"
    if idle:
        text += (
            f", of which {fmt(idle['cpu_percent'])} points are the triggerer-like harness (the "
            "calibration row: the same tasks, portals and sleeps without any request)"
        )
    rate = steady["gets_per_job_mean"] * steady["n"] / steady["wall_to_all_events_s"]
    text += (
        f". The rest is the polling itself, {fmt(rate, 0)} GETs/s on average through httpx "
        "(httpcore, h11, anyio) on this 2-core VM"
    )
    if thread:
        text += f"; requests in threads (b) costs about the same, {fmt(thread['cpu_percent'])}%"
    return text + ". The polling part scales with polls per second (triggers / poll interval)."


def _download_note(runs: list[dict[str, Any]]) -> str | None:
    """A slower download than curl's, from the largest size: CPU per GiB shows it is CPU-bound."""
    if not runs:
        return None
    largest = max(run["size"] for run in runs)
    big = [run for run in runs if run["size"] == largest and run["curl"]]
    if not big or ratio_to_curl(big) >= TARGETS["download_ratio"]:
        return None
    gib = largest / 2**30
    cpu = median([run["hook"]["cpu_seconds"] for run in big]) / gib
    wall = median([run["hook"]["seconds"] for run in big]) / gib
    curl_wall = median([run["curl"]["seconds"] for run in big]) / gib
    return (
        f"*Download.* download_video spends {fmt(cpu, 2)} s of CPU per GiB in "
        f"{fmt(wall, 2)} s of wall time: it is CPU-bound on its one thread, which receives, "
        "SHA-256-hashes and writes every byte, while curl fetches the same GiB from the same "
        f"emulator in {fmt(curl_wall, 2)} s without hashing (so the emulator is not the "
        "ceiling). "
        "Other chunk sizes do not close the gap (table in section 2); memory stays flat."
    )
