"""The benchmark still runs: ``benchmarks/run.py --quick`` exits 0 and prints every table.

Speed is the benchmark's business (``docs/PERFORMANCE.md``), never a timed unit test: this only checks
that the script, its helpers and the emulator process still work together.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.benchmark


def test_quick_benchmark_runs_and_prints_its_tables() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout
    for heading in (
        "## 1. Triggerer scale",
        "## 2. Download",
        "## 3. API economy",
        "## 4. DAG parse cost",
        "## Targets",
    ):
        assert heading in out, f"{heading!r} missing from:\n{out}"
    # A row per trigger variant, every one with all its events (correctness, not speed).
    for variant in (
        "VeoTaskTrigger (aiohttp)",
        "(before) VeoTaskTrigger on one shared httpx client",
        "bare shared aiohttp session",
        "(a) sync requests in the coroutine",
        "(b) asyncio.to_thread",
        "(c) one httpx.AsyncClient per trigger",
    ):
        rows = [line for line in out.splitlines() if line.startswith("|") and variant in line]
        assert rows, f"no row for {variant!r}"
        correct, total = re.search(r"\| (\d+)/(\d+) +\|", rows[0]).groups()  # type: ignore[union-attr]
        assert correct == total, rows[0]
    assert "download_video MiB/s" in out
    assert "every trigger yields exactly one correct event" in out
    assert "Retry-After honoured on every 429" in out
    # The scenarios CI runs small: 10,000 triggers (200 here), 500 ms of latency, a frozen burst.
    for scenario in ("200 @ 1 s, 50 ms", "50 @ 1 s, 500 ms", "(burst, heap frozen)"):
        assert scenario in out, f"{scenario!r} missing from:\n{out}"
    assert "most requests in flight (bound: 64)" in out
