"""Each section's tables, as Markdown, from the results ``measure.py`` collected (or a saved JSON).

Every number shown is a median over the repeats unless its caption says otherwise; the same medians
feed ``targets.py``, so a table and a verdict never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchlib import fmt, median, table

MIB = 2**20

#: Trigger variant (see trigger_variants.py, which the triggers' processes import) -> its name in the
#: tables, in table order.
VARIANT_NAMES = {
    "provider": "VeoTaskTrigger (httpx)",
    "client-per-trigger": "(c) one httpx.AsyncClient per trigger",
    "sync": "(a) sync requests in the coroutine",
    "thread": "(b) asyncio.to_thread(requests)",
    "idle": "calibration: no HTTP at all",
}
SCENARIO_NAMES = {
    "steady": "steady",
    "burst": "burst",
    "steady-https": "steady, HTTPS",
}
#: Trigger metric -> its label and digits in the tables that set two variants side by side.
METRICS = {
    "stall_own_max_ms": ("longest stall (own), ms", 0),
    "stall_own_p99_ms": ("p99 stall (own), ms", 1),
    "stall_own_max_outside_gen2_ms": ("longest stall outside gen-2 GC, ms", 0),
    "cpu_percent": ("CPU % of a core", 1),
    "wall_to_all_events_s": ("wall time to all events, s", 1),
    "rss_delta_kb_per_trigger": ("KB/trigger", 1),
    "gc_gen2": ("gen-2 GCs", 0),
}


# ------------------------------------------------------------------------------------------------
# 1. Triggers
# ------------------------------------------------------------------------------------------------


def trigger_medians(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (scenario, variant): the median of every number over the repeats, and a few extras."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["scenario"], run["variant"]), []).append(run)
    medians = {}
    for key, group in grouped.items():
        numbers = {
            name: median([run[name] for run in group])
            for name, value in group[0].items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        numbers["runs"] = len(group)
        numbers["all_correct"] = all(run["wrong_or_missing_events"] == 0 for run in group)
        numbers["correct_min"] = min(run["correct_events"] for run in group)
        numbers["gc_gen2"] = median([run["gc_collections"][2] for run in group])
        numbers["gc_gen2_max_pause_ms"] = median([run["gc_max_pause_ms"][2] for run in group])
        medians[key] = numbers
    return medians


def trigger_tables(results: dict[str, Any]) -> list[str]:
    """Events, CPU and memory; stalls; VeoTaskTrigger's shared client against (c); (a) and (b) against it."""
    medians = trigger_medians(results["triggers"])
    spec = results["config"]["triggers"]
    scenarios, variants = list(SCENARIO_NAMES), list(VARIANT_NAMES)
    ordered = sorted(medians.items(), key=lambda kv: (scenarios.index(kv[0][0]), variants.index(kv[0][1])))
    ramp = f"over the first {spec['ramp_seconds']:g} s, picked up once a second"
    out = [
        f"{spec['n']} triggers in one event loop; the emulator answers each request after "
        f"{spec['latency'] * 1000:.0f} ms; poll interval {spec['poll_interval']:g} s; each job is done "
        f"{spec['wait'][0]:g}-{spec['wait'][1]:g} s after its trigger starts. "
        f"*steady*: arrivals spread {ramp}; "
        "*burst*: all at once, as after a triggerer restart; *HTTPS*: the same steady run through a TLS "
        f"front. Medians of {results['config']['repeats']} runs.",
        table(
            [
                "scenario",
                "trigger",
                "correct events",
                "wall to all events s",
                "CPU % of a core",
                "KB/trigger",
                "GETs/job",
                "other load (cores)",
            ],
            [_main_row(scenario, variant, m) for (scenario, variant), m in ordered],
        ),
        "Event-loop stalls in ms: the loop's own, and in brackets the wall-clock lateness (which also counts "
        "time the machine gave other processes). *Outside gen-2 GC* leaves out the monitor ticks that "
        "overlap "
        "a full garbage collection; *full GC before start* is what one full collection of the same process's "
        "heap (Airflow loaded, no trigger yet) took.",
        table(
            [
                "scenario",
                "trigger",
                "longest",
                "longest outside gen-2 GC",
                "p99",
                "p99 after start-up",
                "gen-2 GCs / longest ms",
                "full GC before start",
            ],
            [_stall_row(scenario, variant, m) for (scenario, variant), m in ordered],
        ),
    ]
    scenario_keys = [scenario for scenario, _, _, _ in spec["scenarios"]]
    if shared_rows := _shared_client_rows(medians, scenario_keys):
        out.append(
            "VeoTaskTrigger shares one httpx client per event loop and connection among the triggers (at "
            f"most {results.get('max_in_flight', '?')} requests in flight), against (c), one client per "
            "trigger."
        )
        out.append(
            table(["scenario", "metric", "one client per trigger", "shared client", "change"], shared_rows)
        )
    out.append("Side by side: each other pattern's value, and its ratio to VeoTaskTrigger's.")
    out.append(
        table(
            ["scenario", "metric", "VeoTaskTrigger", "(a) sync", "(a) / ours", "(b) to_thread", "(b) / ours"],
            _ratio_rows(medians, scenario_keys),
        )
    )
    return out


def _main_row(scenario: str, variant: str, m: dict[str, Any]) -> list[str]:
    """Correctness first (the worst run's events), then time, CPU, memory, GETs and the machine's load."""
    return [
        SCENARIO_NAMES[scenario],
        VARIANT_NAMES[variant],
        f"{int(m['correct_min'])}/{int(m['n'])}",
        fmt(m["wall_to_all_events_s"]),
        fmt(m["cpu_percent"]),
        fmt(m["rss_delta_kb_per_trigger"]),
        fmt(m["gets_per_job_mean"]),
        fmt(m["other_load_cores"], 2),
    ]


def _stall_row(scenario: str, variant: str, m: dict[str, Any]) -> list[str]:
    """Own stall with the wall-clock one in brackets: the machine is shared, the own one is judged."""

    def own_wall(own: str, wall: str, digits: int = 0) -> str:
        return f"{fmt(m[own], digits)} ({fmt(m[wall], digits)})"

    return [
        SCENARIO_NAMES[scenario],
        VARIANT_NAMES[variant],
        own_wall("stall_own_max_ms", "stall_max_ms"),
        fmt(m["stall_own_max_outside_gen2_ms"], 0),
        own_wall("stall_own_p99_ms", "stall_p99_ms", 1),
        own_wall("stall_own_p99_steady_ms", "stall_p99_steady_ms", 1),
        f"{fmt(m['gc_gen2'], 0)} / {fmt(m['gc_gen2_max_pause_ms'], 0)}",
        fmt(m["full_gc_before_ms"], 0),
    ]


def _ratio_rows(medians: dict[tuple[str, str], dict[str, Any]], scenarios: list[str]) -> list[list[str]]:
    """(a) and (b) against VeoTaskTrigger, in the scenarios that ran at least one of them."""
    rows = []
    for scenario in scenarios:
        base = medians.get((scenario, "provider"))
        if not base or not any((scenario, v) in medians for v in ("sync", "thread")):
            continue
        for key in ("stall_own_max_ms", "stall_own_p99_ms", "cpu_percent", "wall_to_all_events_s"):
            label, digits = METRICS[key]
            row = [SCENARIO_NAMES[scenario], label, fmt(base[key], digits)]
            for variant in ("sync", "thread"):
                other = medians.get((scenario, variant))
                if other is None:
                    row += ["n/a", "n/a"]
                    continue
                ratio = other[key] / base[key] if base[key] else float("nan")
                row += [fmt(other[key], digits), f"{fmt(ratio, 1)}x"]
            rows.append(row)
    return rows


def _shared_client_rows(
    medians: dict[tuple[str, str], dict[str, Any]], scenarios: list[str]
) -> list[list[str]]:
    """VeoTaskTrigger's shared client against (c), in the scenarios that ran both."""
    rows = []
    for scenario in scenarios:
        ours, per_trigger = medians.get((scenario, "provider")), medians.get((scenario, "client-per-trigger"))
        if not ours or not per_trigger:
            continue
        for key in (
            "cpu_percent",
            "rss_delta_kb_per_trigger",
            "stall_own_max_ms",
            "stall_own_max_outside_gen2_ms",
            "gc_gen2",
        ):
            label, digits = METRICS[key]
            if per_trigger[key]:
                change = f"{(ours[key] - per_trigger[key]) / per_trigger[key] * 100:+.0f}%"
            else:
                change = "same" if ours[key] == per_trigger[key] else "n/a"
            rows.append(
                [
                    SCENARIO_NAMES[scenario],
                    label,
                    fmt(per_trigger[key], digits),
                    fmt(ours[key], digits),
                    change,
                ]
            )
    return rows


# ------------------------------------------------------------------------------------------------
# 2. Download
# ------------------------------------------------------------------------------------------------


def by_size(runs: list[dict[str, Any]], key: str = "size") -> dict[int, list[dict[str, Any]]]:
    """The runs grouped by ``key`` (size or chunk), smallest first."""
    return {value: [run for run in runs if run[key] == value] for value in sorted({run[key] for run in runs})}


def ratio_to_curl(runs: list[dict[str, Any]]) -> float:
    """The median over the pairs of the hook's throughput over curl's (NaN without curl)."""
    return median(
        [run["hook"]["mib_per_s"] / run["curl"]["mib_per_s"] for run in runs if run["curl"].get("mib_per_s")]
    )


def download_tables(results: dict[str, Any]) -> list[str]:
    """Throughput and memory against curl per size, and the chunk-size sweep when it ran."""
    data = results["download"]
    rows = [
        [
            f"{size // MIB} MiB",
            fmt(median([run["hook"]["mib_per_s"] for run in runs]), 0),
            fmt(median([run["curl"].get("mib_per_s", float("nan")) for run in runs]), 0),
            fmt(ratio_to_curl(runs), 2) + "x",
            fmt(max(run["hook"]["peak_growth_mib"] for run in runs)),
            fmt(median([run["hook"]["cpu_seconds"] for run in runs]), 2),
            "yes" if all(run["hook"]["sha256_ok"] for run in runs) else "NO",
            fmt(median([run["other_load_cores"] for run in runs]), 2),
        ]
        for size, runs in by_size(data["runs"]).items()
    ]
    out = [
        f"Download over loopback into {data['folder_kind']}; {data['curl']}. Medians of "
        f"{results['config']['repeats']} interleaved pairs (hook, then curl, on the same URL); "
        "the ratio is the "
        "median of the pairs' ratios; memory growth is the worst run's.",
        table(
            [
                "size",
                "download_video MiB/s",
                "curl MiB/s",
                "ratio",
                "peak RSS growth MiB",
                "hook CPU s",
                "sha256 ok",
                "other load (cores)",
            ],
            rows,
        ),
    ]
    if data["sweep"]:
        sweep_rows = [
            [
                f"{chunk // 1024} KiB",
                fmt(median([run["hook"]["mib_per_s"] for run in runs]), 0),
                fmt(ratio_to_curl(runs), 2) + "x",
                fmt(max(run["hook"]["peak_growth_mib"] for run in runs)),
                fmt(median([run["hook"]["cpu_seconds"] for run in runs]), 2),
            ]
            for chunk, runs in by_size(data["sweep"], "chunk").items()
        ]
        out.append(
            "Other chunk sizes for the largest download "
            f"(the hook uses {results['chunk_bytes'] // 1024} KiB):"
        )
        out.append(
            table(["chunk", "MiB/s", "ratio to curl", "peak RSS growth MiB", "hook CPU s"], sweep_rows)
        )
    return out


# ------------------------------------------------------------------------------------------------
# 3. API economy
# ------------------------------------------------------------------------------------------------


def api_tables(results: dict[str, Any]) -> list[str]:
    """GETs per job (simulated and one real run), and what the clients waited in each storm."""
    data = results["api"]
    rows = [
        [
            f"{fmt(sim['job_seconds'] / 60, 0)} min job",
            f"{sim['runs']} seeds",
            f"{sim['gets_min']} / {fmt(sim['gets_median'], 0)} / {sim['gets_max']}",
            f"1 + {fmt(sim['gets_median'], 0)}",
            fmt(sim["min_gap_s"], 2),
            fmt(sim["seen_late_median_s"]),
        ]
        for sim in data["simulated"]
    ]
    real = data["real"]
    rows.append(
        [
            f"{fmt(real['job_seconds'], 0)} s job, poll {real['poll_interval']:g} s "
            "(real run on the emulator)",
            "1 run",
            str(real["gets"]),
            f"{real['posts']} + {real['gets']}",
            fmt(real["min_gap_s"], 2),
            fmt(real["seen_after_s"] - real["job_seconds"]),
        ]
    )
    storm_rows = [
        [
            f"{storm['storm']} x HTTP {storm['status']}"
            + (f", Retry-After {storm['retry_after_s']:g} s" if storm["retry_after_s"] is not None else ""),
            "VeoAsyncClient (trigger)" if storm["client"] == "async" else "VeoHook (sync)",
            " ".join(str(a) for a in storm["answers"]),
            ", ".join(f"{w:.2f}" for w in storm["waited_s"]),
            storm["gave_up_with"] or "no: answered",
        ]
        for storm in data["storms"]
    ]
    return [
        f"Polling at DEFAULT_POLL_INTERVAL = {data['default_poll_interval']:g} s (each wait is the interval "
        "plus 0-10% jitter). Simulated: JobWatch on a fake clock; real: the emulator's records.",
        table(
            [
                "job",
                "runs",
                "GETs min / median / max",
                "requests (POST + GETs)",
                "shortest gap between GETs s",
                "seen after completion s (median)",
            ],
            rows,
        ),
        "Storms: the emulator answers the next requests with an error; "
        "'waited' is the gap between the requests it "
        "received, i.e. what the client actually slept (plus one request's time).",
        table(["storm", "client", "answers, in order", "waited s", "gave up?"], storm_rows),
    ]


# ------------------------------------------------------------------------------------------------
# 4. DAG parse cost
# ------------------------------------------------------------------------------------------------


def parse_tables(results: dict[str, Any]) -> list[str]:
    """Import cost with and without the provider, and the modules it adds."""
    data = results["parse"]
    rows = [
        ["import airflow.sdk", fmt(data["base_cpu_median_ms"], 0), fmt(data["base_wall_median_ms"], 0), ""],
        [
            "... + operators.veo + sensors.veo",
            fmt(data["provider_cpu_median_ms"], 0),
            fmt(data["provider_wall_median_ms"], 0),
            "",
        ],
        [
            "added by the provider",
            fmt(data["added_cpu_median_ms"]),
            fmt(data["added_wall_median_ms"]),
            fmt(data["importtime_added_self_ms"]),
        ],
    ]
    heaviest = ", ".join(f"{name} {self_ms:.1f} ms" for name, self_ms, _ in data["heaviest_added"][:5])
    return [
        f"Fresh interpreters, bytecode cached, medians of {data['runs']} alternating runs.",
        table(["python -c", "CPU ms", "wall ms", "-X importtime self ms"], rows),
        f"Modules the provider adds ({data['modules_added']}), heaviest first: {heaviest}.",
    ]


#: Section key -> its title and its tables, in the order of the docs.
SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "triggers": ("1. Triggerer scale", trigger_tables),
    "download": ("2. Download", download_tables),
    "api": ("3. API economy", api_tables),
    "parse": ("4. DAG parse cost", parse_tables),
}


def render_sections(results: dict[str, Any]) -> str:
    """Every measured section's tables, as Markdown."""
    out = []
    for key, (title, builder) in SECTIONS.items():
        if key in results:
            out += [f"## {title}\n", "\n\n".join(builder(results)), ""]
    return "\n".join(out)
