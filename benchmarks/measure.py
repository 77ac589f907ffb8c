"""What each section measures, and the measuring: each runs its ``bench_*.py`` script in fresh processes.

The scripts do the timing inside the process measured; this side sizes the runs, starts the emulator
in a process of its own for them, notes how busy the rest of the machine was, and collects their
``RESULT`` lines. Nothing here imports Airflow at module level: this process only orchestrates.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import MachineLoad, emulator, run_json

MIB = 2**20


def configuration(quick: bool, repeats: int | None, variants: set[str] | None = None) -> dict[str, Any]:
    """What each section measures, full or ``quick``; ``variants`` keeps only those trigger variants.

    A trigger scenario is (name, arrivals, over TLS, variants). The result is saved with the results,
    so ``--from-json`` renders the tables with the sizes they were measured at.
    """
    if quick:
        config: dict[str, Any] = {
            "quick": True,
            "repeats": repeats or 1,
            "triggers": {
                "n": 50,
                "poll_interval": 0.3,
                "wait": (0.5, 1.0),
                "ramp_seconds": 0.3,
                "latency": 0.05,
                "scenarios": [
                    ("burst", "burst", False, ["provider", "client-per-trigger", "sync", "thread"])
                ],
            },
            "download": {"sizes": (16 * MIB,), "chunk_sweep": ()},
            "parse_runs": 1,
        }
    else:
        config = {
            "quick": False,
            "repeats": repeats or 3,
            "triggers": {
                "n": 1000,
                "poll_interval": 10.0,
                "wait": (10.0, 60.0),
                "ramp_seconds": 10.0,
                "latency": 0.05,
                "scenarios": [
                    ("steady", "ramp", False, ["provider", "client-per-trigger", "sync", "thread", "idle"]),
                    ("burst", "burst", False, ["provider", "client-per-trigger", "sync", "thread"]),
                    ("steady-https", "ramp", True, ["provider", "client-per-trigger"]),
                ],
            },
            "download": {"sizes": (100 * MIB, 1024 * MIB), "chunk_sweep": (256 * 1024, 4 * MIB)},
            "parse_runs": 15,
        }
    if variants is not None:
        config["triggers"]["scenarios"] = [
            (name, arrival, tls, [v for v in names if v in variants])
            for name, arrival, tls, names in config["triggers"]["scenarios"]
        ]
    return config


def machine() -> dict[str, str]:
    """The machine and versions the numbers belong to, for the docs' header."""
    from importlib.metadata import version

    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kib / 2**20:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "airflow": version("apache-airflow"),
        "httpx": version("httpx"),
        "requests": version("requests"),
    }


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# 1. Triggers: bench_triggers.py, one process per scenario, variant and repeat
# ------------------------------------------------------------------------------------------------


def measure_triggers(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per repeat, scenario and variant, each against an emulator of its own."""
    spec = config["triggers"]
    runs = []
    for repeat in range(config["repeats"]):
        for scenario, arrival, tls, variants in spec["scenarios"]:
            for variant in variants:
                say(f"triggers: repeat {repeat + 1}, {scenario}, {variant} x {spec['n']} ...")
                args = [
                    "benchmarks/bench_triggers.py",
                    f"--variant={variant}",
                    f"--arrival={arrival}",
                    f"--n={spec['n']}",
                    f"--poll-interval={spec['poll_interval']}",
                    f"--wait-min={spec['wait'][0]}",
                    f"--wait-max={spec['wait'][1]}",
                    f"--ramp-seconds={spec['ramp_seconds']}",
                    f"--seed={repeat + 1}",
                ]
                with emulator(spec["latency"], tls=tls) as emu, MachineLoad(emu["pid"]) as load:
                    result = run_json(args, env=emu["env"])
                polls = emu.get("summary", {}).get("polls_per_job") or [0]
                result |= {
                    "scenario": scenario,
                    "other_load_cores": load.other_cores,
                    "repeat": repeat,
                    "gets_per_job_mean": sum(polls) / len(polls),
                }
                result.pop("worst_stalls", None)
                runs.append(result)
                say(
                    f"  events {result['correct_events']}/{result['n']}, stall max "
                    f"{result['stall_own_max_ms']:.0f} ms (wall {result['stall_max_ms']:.0f}), "
                    f"CPU {result['cpu_percent']:.1f}%, {result['rss_delta_kb_per_trigger']:.1f} KB/trigger, "
                    f"{result['wall_to_all_events_s']:.1f} s, other load {load.other_cores:.2f} cores"
                )
    return runs


# ------------------------------------------------------------------------------------------------
# 2. Download: bench_download.py against curl on the same URL, pairs interleaved
# ------------------------------------------------------------------------------------------------


def measure_download(config: dict[str, Any]) -> dict[str, Any]:
    """Per size, ``repeats`` pairs (hook, then curl); for the largest, the chunk sizes of the sweep."""
    curl = shutil.which("curl")
    sizes = config["download"]["sizes"]
    rows: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    with _download_dir() as folder, emulator() as emu:
        for size in sizes:
            download = _Download.create(emu, size, folder, curl)
            for repeat in range(config["repeats"]):
                say(f"download: {size // MIB} MiB, repeat {repeat + 1} ...")
                with MachineLoad(emu["pid"]) as load:
                    hook, by_curl = download.pair()
                rows.append(
                    {"size": size, "hook": hook, "curl": by_curl, "other_load_cores": load.other_cores}
                )
                say(
                    f"  hook {hook['mib_per_s']:.0f} MiB/s, curl {by_curl.get('mib_per_s', 0):.0f} MiB/s, "
                    f"growth {hook['peak_growth_mib']:.1f} MiB, other load {load.other_cores:.2f} cores"
                )
            for chunk in config["download"]["chunk_sweep"] if size == max(sizes) else ():
                for repeat in range(config["repeats"]):
                    say(f"download: chunk {chunk // 1024} KiB, {size // MIB} MiB, repeat {repeat + 1} ...")
                    hook, by_curl = download.pair(f"--chunk-bytes={chunk}")
                    sweep.append({"size": size, "chunk": chunk, "hook": hook, "curl": by_curl})
    return {"runs": rows, "sweep": sweep, "curl": _curl_version(curl), "folder_kind": _fs_kind(folder)}


@contextlib.contextmanager
def _download_dir() -> Iterator[Path]:
    """tmpfs when there is one, so the disk's speed is not what is measured (both tools write there)."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    folder = base / f"veo-bench-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class _Download:
    """One completed job of ``size`` bytes on the emulator, downloaded by the hook and by curl in turn."""

    hook_args: list[str]
    env: dict[str, str]
    url: str
    size: int
    curl: str | None
    folder: Path

    @classmethod
    def create(cls, emu: dict[str, Any], size: int, folder: Path, curl: str | None) -> _Download:
        import requests

        from airflow_provider_veo.api import VideoJob
        from airflow_provider_veo.testing.emulator import expected_sha256

        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {emu['api_key']}"
            parts = [("model", (None, "veo3.1-fast")), ("prompt", (None, f"clip [emu:polls=0,bytes={size}]"))]
            created = session.post(emu["url"] + "/v1/videos", files=parts, timeout=30).json()
            read = session.get(emu["url"] + "/v1/videos/" + created["id"], timeout=30)
            job = VideoJob.from_json(read.json())
        hook_args = [
            "benchmarks/bench_download.py",
            "--job",
            json.dumps(job.to_dict()),
            f"--destination={folder}/",
            f"--expected-sha256={expected_sha256(size)}",
        ]
        return cls(hook_args, emu["env"], job.video_url or "", size, curl, folder)

    def pair(self, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """download_video in a fresh process (``extra``: more of its arguments), then curl on the same URL."""
        hook = run_json([*self.hook_args, *extra], env=self.env)
        return hook, _curl(self.curl, self.url, self.folder / "curl.mp4", self.size) if self.curl else {}


def _curl(curl: str, url: str, target: Path, size: int) -> dict[str, Any]:
    """``curl -o`` on the same URL: the throughput the machine and the emulator allow without Python."""
    started = time.perf_counter()
    subprocess.run([curl, "-s", "-S", "-f", "-o", str(target), url], check=True)
    seconds = time.perf_counter() - started
    got = target.stat().st_size
    target.unlink()
    return {"seconds": seconds, "mib_per_s": got / seconds / MIB, "bytes_ok": got == size}


def _curl_version(curl: str | None) -> str:
    if not curl:
        return "curl not found"
    first_line = subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return " ".join(first_line.split()[:2])  # "curl 7.88.1"


def _fs_kind(folder: Path) -> str:
    return "tmpfs (/dev/shm)" if str(folder).startswith("/dev/shm") else f"disk ({folder.parent})"


# ------------------------------------------------------------------------------------------------
# 3. API economy and 4. DAG parse cost: one script run each
# ------------------------------------------------------------------------------------------------


def measure_api(config: dict[str, Any]) -> dict[str, Any]:
    """Counts requests, not CPU: one process is enough, its emulator in the same process."""
    say("api: simulated polling, one real run, 429 and 503 storms ...")
    return run_json(["benchmarks/bench_api.py", *(["--quick"] if config["quick"] else [])])


def measure_parse(config: dict[str, Any]) -> dict[str, Any]:
    """The script itself starts the fresh interpreters it times, alternating with and without the provider."""
    say("parse: fresh interpreters importing airflow.sdk, with and without the provider ...")
    return run_json(["benchmarks/bench_parse.py", f"--runs={config['parse_runs']}"])


#: Section key -> its measuring, in the order of the docs.
MEASURES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "triggers": measure_triggers,
    "download": measure_download,
    "api": measure_api,
    "parse": measure_parse,
}
