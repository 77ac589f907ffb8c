"""Helpers shared by the benchmark scripts: the emulator process, subprocess runs, statistics, tables."""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
RESULT = "RESULT "
PAGE = os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def emulator(latency: float = 0.0, tls: bool = False) -> Iterator[dict[str, Any]]:
    """The emulator in its own process; yields its URLs and key, stops it on exit.

    With ``tls``, ``info["env"]`` points the connection at its HTTPS front and trusts its certificate.
    After the ``with`` block, ``info["summary"]`` holds what the emulator saw.
    """
    process = subprocess.Popen(
        [PYTHON, str(HERE / "emulator_process.py"), "--latency", str(latency), *(["--tls"] if tls else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=python_env(),
        preexec_fn=_raise_priority,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited before it was ready")
        info = json.loads(line)
        host = info["tls_url"] if tls else info["url"]
        info["env"] = {
            "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(
                {"conn_type": "veo", "host": host, "password": info["api_key"]}
            )
        }
        if tls:  # Trust the emulator's throw-away certificate, and only it.
            info["env"] |= {"SSL_CERT_FILE": info["ca_file"], "REQUESTS_CA_BUNDLE": info["ca_file"]}
        yield info
        # Closing stdin stops it; it answers with a summary of what it saw (requests, polls per job).
        process.stdin.close()  # type: ignore[union-attr]
        last = process.stdout.readline()
        info["summary"] = json.loads(last) if last.startswith("{") else {}
    finally:
        if process.stdin and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of benchmark subprocesses: bytecode cached (in a folder of its own), as deployed.

    Installed Airflow always has its ``.pyc`` files; without them (``PYTHONDONTWRITEBYTECODE`` and no
    ``__pycache__``) every import compiles from source and parse and start-up times are several
    times what a deployment sees.
    """
    env = {**os.environ, **(extra or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "veo-benchmarks-pycache"))
    return env


def _raise_priority() -> None:
    """Run benchmark processes ahead of whatever else the machine runs (best effort; needs root)."""
    with contextlib.suppress(OSError):
        os.nice(-10)


def run_json(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run a benchmark script in a fresh interpreter; it prints its result on a ``RESULT {json}`` line."""
    result = subprocess.run(
        [PYTHON, *args],
        env=python_env(env),
        cwd=ROOT,
        preexec_fn=_raise_priority,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line[len(RESULT) :] for line in result.stdout.splitlines() if line.startswith(RESULT)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def emit(result: dict[str, Any]) -> None:
    """Print a script's result where :func:`run_json` finds it."""
    sys.stdout.flush()
    print(RESULT + json.dumps(result), flush=True)


class MachineLoad:
    """How busy the whole machine was while something ran, beyond the processes we account for.

    ``other_cores`` is the CPU the rest of the machine used meanwhile (other users' tests, servers),
    in cores: the benchmark shares its two cores with whatever else runs, and says so.
    """

    def __init__(self, *own_pids: int) -> None:
        self.own_pids = own_pids

    def __enter__(self) -> MachineLoad:
        self._busy, self._total = _machine_jiffies()
        self._own = sum(_process_jiffies(pid) for pid in self.own_pids)
        self._children = cpu_seconds(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc_info: object) -> None:
        busy, total = _machine_jiffies()
        own = sum(_process_jiffies(pid) for pid in self.own_pids) - self._own
        cores = os.cpu_count() or 1
        elapsed_jiffies = (total - self._total) / cores
        tick = os.sysconf("SC_CLK_TCK")
        children = (cpu_seconds(resource.RUSAGE_CHILDREN) - self._children) * tick
        self.other_cores = (
            max(0.0, (busy - self._busy - own - children) / elapsed_jiffies) if elapsed_jiffies else 0
        )


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def _process_jiffies(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """CPU time (user + system) of this process, or with ``RUSAGE_CHILDREN`` of its waited-for children.

    Unlike wall time, other processes on a busy machine do not inflate it.
    """
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``), cheap enough to sample often."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median, or NaN (shown as ``n/a``) for no values: a section may have nothing to report."""
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: readable in a terminal and pasted as is into docs/PERFORMANCE.md."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table; ``n/a`` for a missing one, so one absent measurement never breaks a table."""
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )
