"""DAG-parse cost: what importing the provider's operators and sensor adds to importing ``airflow.sdk``.

The judged figure is timed inside fresh interpreters (``python -c``, bytecode cached as in a
deployment): ``airflow.sdk`` is imported first, then the CPU time (which other processes on a busy
machine do not inflate) of importing the operators and the sensor is read around that import alone.
The whole interpreters are timed from outside too, with and without the provider, alternating so
drift in machine load hits both alike; their difference is shown, but a 1.5 s start-up varies by
more than the provider adds, so it is information only. ``-X importtime`` then names the modules the
provider pulls in beyond ``airflow.sdk``, heaviest first.
Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import time
from typing import Any

from benchlib import PYTHON, cpu_seconds, emit, python_env

BASE = "import airflow.sdk"
PROVIDER = BASE + "; import airflow_provider_veo.operators.veo, airflow_provider_veo.sensors.veo"


def timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh interpreter running ``code``."""
    cpu_before = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    return wall, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before


#: The line that carries the in-process timing; Airflow may log to standard output around it.
MARK = "provider import seconds (wall, cpu):"
#: Prints the wall and CPU seconds of importing the operators and the sensor once ``airflow.sdk`` is in.
IN_PROCESS = f"""{BASE}
import time
wall, cpu = time.perf_counter(), time.process_time()
import airflow_provider_veo.operators.veo, airflow_provider_veo.sensors.veo
print({MARK!r}, time.perf_counter() - wall, time.process_time() - cpu)
"""


def in_process(env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the provider's import alone, in a fresh interpreter."""
    result = subprocess.run([PYTHON, "-c", IN_PROCESS], env=env, check=True, capture_output=True, text=True)
    (line,) = (line for line in result.stdout.splitlines() if line.startswith(MARK))
    wall, cpu = (float(value) for value in line.removeprefix(MARK).split())
    return wall, cpu


def importtime(code: str, env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Module -> (self us, cumulative us) from ``-X importtime``."""
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code], env=env, check=True, capture_output=True, text=True
    )
    modules = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        modules[name.strip()] = (int(self_us), int(cumulative))
    return modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = python_env()
    for code in (BASE, PROVIDER):  # Warm the bytecode cache and the page cache.
        timed(code, env)
    base, provider, alone = [], [], []
    for _ in range(args.runs):
        base.append(timed(BASE, env))
        provider.append(timed(PROVIDER, env))
        alone.append(in_process(env))

    def added(column: int) -> float:
        return statistics.median(p[column] - b[column] for b, p in zip(base, provider, strict=True)) * 1000

    only_base = importtime(BASE, env)
    with_provider = importtime(PROVIDER, env)
    extra = {name: t for name, t in with_provider.items() if name not in only_base}
    # Self time summed over the modules only the provider brings in: the import cost it adds.
    added_self_ms = sum(self_us for self_us, _ in extra.values()) / 1000
    heaviest = sorted(extra.items(), key=lambda item: -item[1][0])[:8]
    result: dict[str, Any] = {
        "runs": args.runs,
        "base_wall_median_ms": statistics.median(b[0] for b in base) * 1000,
        "provider_wall_median_ms": statistics.median(p[0] for p in provider) * 1000,
        "added_wall_median_ms": added(0),
        "base_cpu_median_ms": statistics.median(b[1] for b in base) * 1000,
        "provider_cpu_median_ms": statistics.median(p[1] for p in provider) * 1000,
        "added_cpu_median_ms": added(1),
        "in_process_wall_median_ms": statistics.median(a[0] for a in alone) * 1000,
        "in_process_cpu_median_ms": statistics.median(a[1] for a in alone) * 1000,
        "importtime_added_self_ms": added_self_ms,
        "modules_added": len(extra),
        "heaviest_added": [
            (name, self_us / 1000, cumulative / 1000) for name, (self_us, cumulative) in heaviest
        ],
    }
    emit(result)


if __name__ == "__main__":
    main()
