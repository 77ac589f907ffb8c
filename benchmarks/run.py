"""Performance of airflow-provider-veo, measured side by side: ``python benchmarks/run.py``.

Four sections, each in fresh processes, against the CometAPI emulator running in a process of its own:

1. triggers  -- ``VeoTaskTrigger`` in one event loop as the triggerer runs them: 1,000 at a 10 s poll
   (arrivals spread over one interval; a burst of all at once as after a triggerer restart, with and
   without ``gc.freeze()``; over HTTPS), 1,000 at 500 ms of API latency, and 10,000 at a 15 s poll,
   next to the provider's previous design (one shared httpx client, 8 in flight), a bare shared
   aiohttp session, and the patterns other providers use (sync ``requests`` in the coroutine,
   ``asyncio.to_thread(requests...)``, one ``httpx.AsyncClient`` per trigger). Events and their
   schedule, event-loop stalls, CPU, memory per trigger, garbage collections, requests in flight.
2. download  -- ``VeoHook.download_video`` against ``curl -o`` on the same URL, alone and followed by a
   SHA-256 of the file, 16 MiB, 100 MiB and 1 GiB into tmpfs, and 1 GiB onto the disk.
3. api       -- GETs per job at the default poll interval; the waits under a 429 storm.
4. parse     -- what importing the operators and the sensor adds to ``import airflow.sdk``.

``--quick`` runs a small version of everything in about a minute (CI checks it still runs; it
asserts nothing about speed). ``--write-docs`` writes ``docs/PERFORMANCE.md`` from the results;
``--json FILE`` keeps them, and ``--from-json FILE`` rebuilds the tables and docs without measuring.
Every run stops by itself: each trigger run gives up after 900 s, each script after 1,800 s.

Layout: ``measure.py`` sizes and runs each section (its ``bench_*.py`` script does the timing in the
process measured), ``tables.py`` renders each section's tables, ``targets.py`` judges them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchlib import ROOT
from measure import MEASURES, configuration, machine
from tables import render_sections
from targets import capacity, notes, render_targets


def measure(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    """Run the sections asked for and gather their results, with what and where they were run."""
    from airflow_provider_veo.api import DOWNLOAD_CHUNK_BYTES
    from airflow_provider_veo.hooks.async_client import MAX_REQUESTS_IN_FLIGHT

    variants = {v.strip() for v in args.variants.split(",")} if args.variants else None
    config = configuration(args.quick, args.repeats, variants)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    started = time.time()
    load_at_start = os.getloadavg()
    results: dict[str, Any] = {
        "config": config,
        "machine": machine(),
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "chunk_bytes": DOWNLOAD_CHUNK_BYTES,
        "in_flight_bound": MAX_REQUESTS_IN_FLIGHT,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
    }
    if config["quick"]:
        # Quick mode only checks that everything runs: the sections run side by side to save time.
        with ThreadPoolExecutor(max_workers=len(sections)) as pool:
            futures = {name: pool.submit(MEASURES[name], config) for name in sections}
            results.update({name: future.result() for name, future in futures.items()})
    else:
        for name in sections:
            results[name] = MEASURES[name](config)
    results["minutes"] = (time.time() - started) / 60
    results["load_average_at_start"] = load_at_start
    return results


def render(results: dict[str, Any]) -> str:
    """The report printed: each section's tables, the targets, the capacity line and the notes."""
    out = [render_sections(results), "## Targets\n", render_targets(results)]
    if line := capacity(results):
        out += ["", f"Capacity: {line}"]
    out += ["", *notes(results)]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or load saved results), print the report, and write the docs when asked."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small version of everything, for CI")
    parser.add_argument(
        "--repeats", type=int, help="runs per measurement (default: 3 per download, 1 per trigger run)"
    )
    parser.add_argument("--only", default=",".join(MEASURES), help="comma-separated sections to run")
    parser.add_argument(
        "--variants",
        help="only these trigger variants (comma-separated: provider,httpx-shared,aiohttp-bare,"
        "client-per-trigger,sync,thread,idle)",
    )
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    parser.add_argument("--from-json", type=Path, help="rebuild tables (and docs) from saved results")
    parser.add_argument("--write-docs", action="store_true", help="write docs/PERFORMANCE.md")
    args = parser.parse_args(argv)

    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        results = measure(args, argv)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(render(results))
    if args.write_docs:
        if results["config"]["quick"]:
            print(
                "--write-docs needs a full run, not --quick: docs/PERFORMANCE.md left as is", file=sys.stderr
            )
            return 2
        from docs_writer import write_docs

        path = write_docs(
            results, render_sections(results), render_targets(results), capacity(results), notes(results)
        )
        print(f"Wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
