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
    "provider": "VeoTaskTrigger (aiohttp)",
    "httpx-shared": "(before) VeoTaskTrigger on one shared httpx client, 8 in flight",
    "aiohttp-bare": "bare shared aiohttp session (library floor)",
    "client-per-trigger": "(c) one httpx.AsyncClient per trigger",
    "sync": "(a) sync requests in the coroutine",
    "thread": "(b) asyncio.to_thread(requests)",
    "idle": "calibration: no HTTP at all",
}
#: Trigger metric -> its label and digits in the tables that set two variants side by side.
METRICS = {
    "cpu_s": ("CPU s", 1),
    "cpu_percent": ("CPU % of a core", 1),
    "stall_own_max_ms": ("longest stall (own), ms", 0),
    "stall_own_p99_ms": ("p99 stall (own), ms", 1),
    "stall_own_max_outside_gen2_ms": ("longest stall outside gen-2 GC, ms", 0),
    "wall_to_all_events_s": ("wall time to all events, s", 1),
    "lateness_max_s": ("latest event after its job ended, s", 1),
    "rss_delta_kb_per_trigger": ("KB/trigger", 1),
    "gc_gen2": ("gen-2 GCs", 0),
}


def scenario_label(spec: dict[str, Any]) -> str:
    """E.g. ``10,000 @ 15 s, 50 ms``, with ``burst``, ``frozen heap`` or ``HTTPS`` when they apply."""
    label = f"{spec['n']:,} @ {spec['poll_interval']:g} s, {spec['latency'] * 1000:.0f} ms"
    extras = [
        word
        for word, on in (
            ("burst", spec["arrival"] == "burst"),
            ("heap frozen", spec["freeze"]),
            ("HTTPS", spec["tls"]),
            (f"every job done on poll {spec.get('polls')}", spec.get("polls")),
        )
        if on
    ]
    return label + (f" ({', '.join(extras)})" if extras else "")


def scenario_specs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The trigger scenarios that ran, by name, in the order they ran."""
    return {spec["name"]: spec for spec in results["config"]["triggers"]["scenarios"]}


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
        numbers["all_on_schedule"] = all(run["on_schedule"] for run in group)
        medians[key] = numbers
    return medians


def trigger_tables(results: dict[str, Any]) -> list[str]:
    """Per scenario: events and schedule, CPU, memory, requests in flight; stalls and GCs; ratios."""
    medians = trigger_medians(results["triggers"])
    specs = scenario_specs(results)
    variants = list(VARIANT_NAMES)
    ordered = sorted(
        ((key, m) for key, m in medians.items() if key[0] in specs),
        key=lambda kv: (list(specs).index(kv[0][0]), variants.index(kv[0][1])),
    )
    repeats = results["config"]["triggers"]["repeats"]
    out = [
        "Triggers in one event loop, started as the triggerer starts them; the emulator (another process) "
        "answers each request after the latency given. *Steady* arrivals are spread over one poll "
        "interval and picked up once a second; *burst*: all at once, as after a triggerer restart; *heap "
        "frozen*: `gc.freeze()` before the triggers start, as a triggerer can after start-up; *HTTPS*: "
        "through a TLS front. Each job ends 10-60 s after its trigger starts (500 ms: 30-90 s; 10,000: "
        "15-75 s); *done on poll N*: each job completes on its N-th poll instead, whenever that comes. "
        "*On schedule*: every event came at most 1.1 poll intervals + twice the latency + 1 s "
        "after its job ended (the latest is shown); when done on poll N, within 10% of N - 1 poll "
        "intervals (+ twice the latency + 1 s) of its trigger's start, the lateness past N - 1 "
        "intervals is shown. *In flight*: the most requests VeoTaskTrigger's shared "
        "session had at the API at once / the highest limit it set (the old design: a fixed 8). "
        f"{'Medians of ' + str(repeats) + ' runs' if repeats > 1 else 'One run each'}; the machine's "
        "other load during each run is in the last column.",
        table(
            [
                "scenario",
                "trigger",
                "correct events",
                "on schedule (latest s)",
                "CPU s",
                "CPU % of a core",
                "KB/trigger",
                "GETs/job",
                "in flight / limit",
                "other load (cores)",
            ],
            [_main_row(specs[scenario], variant, m) for (scenario, variant), m in ordered],
        ),
        "Event-loop stalls in ms: the loop's own, and in brackets the wall-clock lateness (which also counts "
        "time the machine gave other processes). *Outside gen-2 GC* leaves out the monitor ticks that "
        "overlap a full garbage collection; *full GC before start* is what one full collection of the "
        "same process's heap (Airflow loaded, no trigger yet) took.",
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
            [_stall_row(specs[scenario], variant, m) for (scenario, variant), m in ordered],
        ),
    ]
    if rows := _ratio_rows(medians, specs):
        out.append(
            "Side by side, in the same runs: each alternative's value and its ratio to VeoTaskTrigger's."
        )
        out.append(table(["scenario", "metric", "VeoTaskTrigger", "other trigger", "value", "ratio"], rows))
    return out


def _main_row(spec: dict[str, Any], variant: str, m: dict[str, Any]) -> list[str]:
    """Correctness first (the worst run's events), the schedule, CPU, memory, GETs, in flight, load."""
    if variant == "provider":
        in_flight = f"{fmt(m['in_flight_peak'], 0)} / {fmt(m['limit_peak'], 0)}"
    elif variant == "httpx-shared":
        in_flight = "<= 8 (fixed)"
    else:
        in_flight = ""
    return [
        scenario_label(spec),
        VARIANT_NAMES[variant],
        f"{m['correct_min']:.0f}/{m['n']:.0f}",
        f"{'yes' if m['all_on_schedule'] else 'NO'} ({fmt(m['lateness_max_s'])})",
        fmt(m["cpu_s"]),
        fmt(m["cpu_percent"]),
        fmt(m["rss_delta_kb_per_trigger"]),
        fmt(m["gets_per_job_mean"]),
        in_flight,
        fmt(m["other_load_cores"], 2),
    ]


def _stall_row(spec: dict[str, Any], variant: str, m: dict[str, Any]) -> list[str]:
    """Stalls, each as own (wall), then the gen-2 collections and the pre-run full GC."""

    def own_wall(own: str, wall: str, digits: int = 0) -> str:
        return f"{fmt(m[own], digits)} ({fmt(m[wall], digits)})"

    return [
        scenario_label(spec),
        VARIANT_NAMES[variant],
        own_wall("stall_own_max_ms", "stall_max_ms"),
        fmt(m["stall_own_max_outside_gen2_ms"], 0),
        own_wall("stall_own_p99_ms", "stall_p99_ms", 1),
        own_wall("stall_own_p99_steady_ms", "stall_p99_steady_ms", 1),
        f"{fmt(m['gc_gen2'], 0)} / {fmt(m['gc_gen2_max_pause_ms'], 0)}",
        fmt(m["full_gc_before_ms"], 0),
    ]


def _ratio_rows(
    medians: dict[tuple[str, str], dict[str, Any]], specs: dict[str, dict[str, Any]]
) -> list[list[str]]:
    """Every other variant against VeoTaskTrigger in the same scenario: CPU, stalls, schedule, memory."""
    rows = []
    for name, spec in specs.items():
        base = medians.get((name, "provider"))
        if not base:
            continue
        for variant in VARIANT_NAMES:
            other = medians.get((name, variant))
            if variant in ("provider", "idle") or other is None:
                continue
            for key in (
                "cpu_s",
                "stall_own_max_outside_gen2_ms",
                "lateness_max_s",
                "rss_delta_kb_per_trigger",
            ):
                label, digits = METRICS[key]
                ratio = other[key] / base[key] if base[key] else float("nan")
                rows.append(
                    [
                        scenario_label(spec),
                        label,
                        fmt(base[key], digits),
                        VARIANT_NAMES[variant],
                        fmt(other[key], digits),
                        f"{fmt(ratio, 2)}x",
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


def ratio_to_hashing_curl(runs: list[dict[str, Any]]) -> float:
    """The median over the pairs of the hook's throughput over curl's followed by a SHA-256 of the file
    (NaN without them)."""
    return median(
        [
            run["hook"]["mib_per_s"] / run["curl"]["hashed"]["mib_per_s"]
            for run in runs
            if run["curl"].get("hashed", {}).get("mib_per_s")
        ]
    )


def over_curl_ms(runs: list[dict[str, Any]]) -> float:
    """The median over the pairs of how much longer the hook took than curl, in ms (NaN without curl)."""
    return median(
        [
            (run["hook"]["seconds"] - run["curl"]["seconds"]) * 1000
            for run in runs
            if run["curl"].get("seconds")
        ]
    )


def download_tables(results: dict[str, Any]) -> list[str]:
    """Throughput and memory against bare requests and curl per size, into tmpfs and onto the disk;
    where the hook's time goes."""
    data = results["download"]

    def rows(runs: list[dict[str, Any]], kind: str) -> list[list[str]]:
        return [
            [
                f"{size // MIB} MiB",
                kind,
                fmt(median([run["hook"]["mib_per_s"] for run in sized]), 0),
                fmt(median([run.get("bare", {}).get("mib_per_s", float("nan")) for run in sized]), 0),
                fmt(median([run["curl"].get("mib_per_s", float("nan")) for run in sized]), 0),
                fmt(ratio_to_curl(sized), 2) + "x",
                fmt(over_curl_ms(sized), 0),
                fmt(
                    median([run["curl"].get("hashed", {}).get("mib_per_s", float("nan")) for run in sized]), 0
                ),
                fmt(ratio_to_hashing_curl(sized), 2) + "x",
                fmt(max(run["hook"]["peak_growth_mib"] for run in sized)),
                fmt(median([run["hook"]["cpu_seconds"] for run in sized]), 2),
                "yes"
                if all(
                    run["hook"]["sha256_ok"] and run["curl"].get("hashed", {}).get("sha256_ok", True)
                    for run in sized
                )
                else "NO",
                fmt(median([run["other_load_cores"] for run in sized]), 2),
            ]
            for size, sized in by_size(runs).items()
        ]

    out = [
        f"Download over loopback; {data['curl']}. Medians of {results['config']['repeats']} interleaved "
        "rounds (download_video in a fresh process, then curl, then curl + sha256, then bare requests in a "
        "fresh process, on the same URL); the ratio and the time over curl's are the medians of the pairs'; "
        "memory growth is the worst run's. download_video receives and writes on one thread and hashes "
        "(SHA-256) and checks the MP4 boxes on another, then fsyncs and renames; *bare requests* streams, "
        "hashes and writes on one thread, with no MP4 check, fsync nor rename; *curl + sha256* is "
        f"`curl -o` then `{data.get('sha256_tool', 'sha256sum')}` on the file, the shell's way to keep a "
        "checksum of every video (curl alone hashes nothing). *sha256 ok*: every run's digest matched, "
        "download_video's and the tool's.",
        table(
            [
                "size",
                "into",
                "download_video MiB/s",
                "bare requests MiB/s",
                "curl MiB/s",
                "ratio to curl",
                "ms over curl",
                "curl + sha256 MiB/s",
                "ratio to curl + sha256",
                "peak RSS growth MiB",
                "hook CPU s",
                "sha256 ok",
                "other load (cores)",
            ],
            rows(data["runs"], data["folder_kind"])
            + rows(data.get("disk_runs", []), data.get("disk_kind", "disk")),
        ),
    ]
    phased = [run for run in data["runs"] if "phases_ms" in run["hook"]]
    if phased:
        names = list(phased[0]["hook"]["phases_ms"])
        out += [
            "Where download_video's time goes (ms, medians; into "
            f"{data['folder_kind']}): each step timed in the same runs; *body* is the rest, the bytes "
            "streaming past (received, written, hashed, walked).",
            table(
                ["size", *names, "body", "download_video total", "curl total"],
                [
                    [
                        f"{size // MIB} MiB",
                        *[
                            fmt(median([run["hook"]["phases_ms"][name] for run in sized]), 1)
                            for name in names
                        ],
                        fmt(
                            median(
                                [
                                    run["hook"]["seconds"] * 1000 - sum(run["hook"]["phases_ms"].values())
                                    for run in sized
                                ]
                            ),
                            1,
                        ),
                        fmt(median([run["hook"]["seconds"] * 1000 for run in sized]), 1),
                        fmt(median([run["curl"].get("seconds", float("nan")) * 1000 for run in sized]), 1),
                    ]
                    for size, sized in by_size(phased).items()
                ],
            ),
        ]
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
            fmt(sim["seen_late_mean_s"]),
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
        f"Polling at DEFAULT_POLL_INTERVAL = {data['default_poll_interval']:g} s from the create's answer "
        "(the k-th GET is due k intervals plus the wait's phase, -10% to +10% of one, after it, so gaps "
        "are one interval, the first 0.9-1.1, and never add up). Simulated: JobWatch on a fake clock; "
        "real: the emulator's records.",
        table(
            [
                "job",
                "runs",
                "GETs min / median / max",
                "requests (POST + GETs)",
                "shortest gap between GETs s",
                "seen after completion s (mean)",
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
            "difference (information: start-up varies by more)",
            fmt(data["added_cpu_median_ms"]),
            fmt(data["added_wall_median_ms"]),
            "",
        ],
        [
            "added by the provider: its import timed inside, after airflow.sdk",
            fmt(data["in_process_cpu_median_ms"]),
            fmt(data["in_process_wall_median_ms"]),
            fmt(data["importtime_added_self_ms"]),
        ],
    ]
    heaviest = ", ".join(f"{name} {self_ms:.1f} ms" for name, self_ms, _ in data["heaviest_added"][:5])
    return [
        f"Fresh interpreters, bytecode cached, medians of {data['runs']} alternating runs. The judged "
        "figure is the last row: the operators' and the sensor's import timed inside each interpreter "
        "once airflow.sdk is imported, so the noise of a whole interpreter's start-up stays out of it.",
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
