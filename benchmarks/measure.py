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


def scenario(
    name: str,
    n: int,
    poll_interval: float,
    latency: float,
    variants: list[str],
    *,
    arrival: str = "ramp",
    wait: tuple[float, float] = (10.0, 60.0),
    tls: bool = False,
    freeze: bool = False,
    polls: int = 0,
) -> dict[str, Any]:
    """One trigger scenario: ``n`` triggers polling every ``poll_interval`` against an API answering
    after ``latency``; arrivals spread over one poll interval (``ramp``) or all at once (``burst``);
    each job ends ``wait`` seconds after its trigger starts, or with ``polls``, on its ``polls``-th poll;
    ``freeze``: ``gc.freeze()`` first."""
    return {
        "name": name,
        "n": n,
        "poll_interval": poll_interval,
        "latency": latency,
        "arrival": arrival,
        "ramp_seconds": poll_interval if arrival == "ramp" else 0.0,
        "wait": wait,
        "tls": tls,
        "freeze": freeze,
        "polls": polls,
        "variants": variants,
    }


def configuration(quick: bool, repeats: int | None, variants: set[str] | None = None) -> dict[str, Any]:
    """What each section measures, full or ``quick``; ``variants`` keeps only those trigger variants.

    The result is saved with the results, so ``--from-json`` renders the tables with the sizes they
    were measured at. Trigger runs are long (a 10,000-trigger run is minutes): one of each by default.
    """
    if quick:
        quick_wait = (0.5, 1.0)
        config: dict[str, Any] = {
            "quick": True,
            "repeats": repeats or 1,
            "triggers": {
                "repeats": repeats or 1,
                "scenarios": [
                    scenario(
                        "1k",
                        50,
                        0.3,
                        0.05,
                        ["provider", "httpx-shared", "aiohttp-bare", "client-per-trigger", "sync", "thread"],
                        wait=quick_wait,
                    ),
                    scenario(
                        "1k-burst-frozen",
                        50,
                        0.3,
                        0.05,
                        ["provider"],
                        arrival="burst",
                        freeze=True,
                        wait=quick_wait,
                    ),
                    scenario("1k-500ms", 50, 1.0, 0.5, ["provider"], wait=(1.0, 2.0)),
                    scenario("10k", 200, 1.0, 0.05, ["provider"], wait=(1.0, 2.0)),
                    scenario("5th-poll", 50, 0.5, 0.05, ["provider"], arrival="burst", polls=3),
                ],
            },
            "download": {"sizes": (16 * MIB,), "disk_sizes": ()},
            "parse_runs": 1,
        }
    else:
        every = ["provider", "httpx-shared", "aiohttp-bare", "client-per-trigger", "thread", "sync", "idle"]
        config = {
            "quick": False,
            "repeats": repeats or 3,
            "triggers": {
                "repeats": repeats or 1,
                "scenarios": [
                    scenario("1k", 1000, 10.0, 0.05, every),
                    scenario("1k-burst", 1000, 10.0, 0.05, ["provider", "httpx-shared"], arrival="burst"),
                    scenario(
                        "1k-burst-frozen",
                        1000,
                        10.0,
                        0.05,
                        ["provider", "httpx-shared"],
                        arrival="burst",
                        freeze=True,
                    ),
                    scenario("1k-500ms", 1000, 15.0, 0.5, ["provider", "httpx-shared"], wait=(30.0, 90.0)),
                    scenario(
                        "10k",
                        10_000,
                        15.0,
                        0.05,
                        ["provider", "httpx-shared", "aiohttp-bare", "idle"],
                        wait=(15.0, 75.0),
                    ),
                    scenario("1k-https", 1000, 10.0, 0.05, ["provider", "httpx-shared"], tls=True),
                    scenario(
                        "1k-500ms-5th-poll",
                        1000,
                        15.0,
                        0.5,
                        ["provider", "aiohttp-bare"],
                        arrival="burst",
                        polls=5,
                    ),
                    scenario(
                        "10k-5th-poll",
                        10_000,
                        15.0,
                        0.05,
                        ["provider", "aiohttp-bare"],
                        arrival="burst",
                        polls=5,
                    ),
                ],
            },
            "download": {"sizes": (16 * MIB, 100 * MIB, 1024 * MIB), "disk_sizes": (1024 * MIB,)},
            "parse_runs": 15,
        }
    if variants is not None:
        for spec in config["triggers"]["scenarios"]:
            spec["variants"] = [v for v in spec["variants"] if v in variants]
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
        "aiohttp": version("aiohttp"),
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
    runs = []
    for repeat in range(config["triggers"]["repeats"]):
        for spec in config["triggers"]["scenarios"]:
            for variant in spec["variants"]:
                say(f"triggers: repeat {repeat + 1}, {spec['name']}, {variant} x {spec['n']} ...")
                args = [
                    "benchmarks/bench_triggers.py",
                    f"--variant={variant}",
                    f"--arrival={spec['arrival']}",
                    f"--n={spec['n']}",
                    f"--poll-interval={spec['poll_interval']}",
                    f"--latency={spec['latency']}",
                    f"--wait-min={spec['wait'][0]}",
                    f"--wait-max={spec['wait'][1]}",
                    f"--ramp-seconds={spec['ramp_seconds']}",
                    f"--seed={repeat + 1}",
                    f"--polls={spec.get('polls', 0)}",
                    *(["--freeze"] if spec["freeze"] else []),
                ]
                with emulator(spec["latency"], tls=spec["tls"]) as emu, MachineLoad(emu["pid"]) as load:
                    result = run_json(args, env=emu["env"])
                summary = emu.get("summary", {})
                polls = summary.get("polls_per_job") or [0]
                result |= {
                    "scenario": spec["name"],
                    "other_load_cores": load.other_cores,
                    "load_average": os.getloadavg()[0],
                    "repeat": repeat,
                    "gets_per_job_mean": sum(polls) / len(polls),
                    "poll_gap_max_s": summary.get("poll_gap_max_s", float("nan")),
                    "poll_gap_p99_s": summary.get("poll_gap_p99_s", float("nan")),
                    "cdn_requests_with_key": summary.get("cdn_requests_with_key", 0),
                }
                result.pop("worst_stalls", None)
                runs.append(result)
                say(
                    f"  events {result['correct_events']}/{result['n']}, on schedule {result['on_schedule']} "
                    f"(latest {result['lateness_max_s']:.1f} s of {result['lateness_allowed_s']:.1f}), "
                    f"stall max {result['stall_own_max_ms']:.0f} ms (p99 {result['stall_own_p99_ms']:.1f}), "
                    f"CPU {result['cpu_s']:.1f} s = {result['cpu_percent']:.1f}%, "
                    f"{result['rss_delta_kb_per_trigger']:.1f} KB/trigger, in flight <= "
                    f"{result['in_flight_peak']}, other load {load.other_cores:.2f} cores"
                )
    return runs


# ------------------------------------------------------------------------------------------------
# 2. Download: bench_download.py against curl on the same URL, pairs interleaved
# ------------------------------------------------------------------------------------------------


def measure_download(config: dict[str, Any]) -> dict[str, Any]:
    """Per size, ``repeats`` rounds: the hook, curl, then bare requests, each on the same URL."""
    curl, sha256_tool = shutil.which("curl"), _sha256_tool()
    rows: list[dict[str, Any]] = []
    disk_rows: list[dict[str, Any]] = []
    with _download_dir() as folder, _download_dir(disk=True) as disk, emulator() as emu:
        for where, sizes, out in (
            (folder, config["download"]["sizes"], rows),
            (disk, config["download"]["disk_sizes"], disk_rows),
        ):
            for size in sizes:
                download = _Download.create(emu, size, where, curl, sha256_tool)
                for repeat in range(config["repeats"]):
                    say(f"download: {size // MIB} MiB into {_fs_kind(where)}, repeat {repeat + 1} ...")
                    with MachineLoad(emu["pid"]) as load:
                        hook, by_curl = download.pair()
                        bare = run_json([*download.hook_args, "--bare"], env=download.env)
                    out.append(
                        {
                            "size": size,
                            "hook": hook,
                            "curl": by_curl,
                            "bare": bare,
                            "other_load_cores": load.other_cores,
                        }
                    )
                    say(
                        f"  hook {hook['mib_per_s']:.0f} MiB/s, bare requests {bare['mib_per_s']:.0f}, "
                        f"curl {by_curl.get('mib_per_s', 0):.0f} MiB/s, curl + sha256 "
                        f"{by_curl.get('hashed', {}).get('mib_per_s', 0):.0f} MiB/s, "
                        f"growth {hook['peak_growth_mib']:.1f} MiB, "
                        f"other load {load.other_cores:.2f} cores"
                    )
    return {
        "runs": rows,
        "disk_runs": disk_rows,
        "curl": _curl_version(curl),
        "sha256_tool": " ".join(sha256_tool[:2]),
        "folder_kind": _fs_kind(folder),
        "disk_kind": _fs_kind(disk),
    }


@contextlib.contextmanager
def _download_dir(disk: bool = False) -> Iterator[Path]:
    """tmpfs when there is one, so the disk's speed is not what is measured (both tools write there);
    with ``disk``, the temp folder's file system (a real disk on this machine), for the figure there."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and not disk else Path(tempfile.gettempdir())
    folder = base / f"veo-bench-{os.getpid()}{'-disk' if disk else ''}"
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
    sha256: str
    curl: str | None
    sha256_tool: list[str]
    folder: Path

    @classmethod
    def create(
        cls, emu: dict[str, Any], size: int, folder: Path, curl: str | None, sha256_tool: list[str]
    ) -> _Download:
        import requests

        from airflow_provider_veo.api import VideoJob
        from airflow_provider_veo.testing.emulator import expected_sha256
        from airflow_provider_veo.testing.emulator.bodies import Clip

        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {emu['api_key']}"
            parts = [("model", (None, "veo3.1-fast")), ("prompt", (None, f"clip [emu:polls=0,bytes={size}]"))]
            created = session.post(emu["url"] + "/v1/videos", files=parts, timeout=30).json()
            read = session.get(emu["url"] + "/v1/videos/" + created["id"], timeout=30)
            job = VideoJob.from_json(read.json())
        # The emulator renders the job's seconds and size into the MP4's moov, so the clip counts.
        sha256 = expected_sha256(size, Clip.of(job.seconds or "", job.size or ""))
        hook_args = [
            "benchmarks/bench_download.py",
            "--job",
            json.dumps(job.to_dict()),
            f"--destination={folder}/",
            f"--expected-sha256={sha256}",
        ]
        return cls(hook_args, emu["env"], job.video_url or "", size, sha256, curl, sha256_tool, folder)

    def pair(self, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """download_video in a fresh process (``extra``: more of its arguments), then curl on the same
        URL, alone and followed by a SHA-256 of the file (the like-for-like shell alternative)."""
        hook = run_json([*self.hook_args, *extra], env=self.env)
        if not self.curl:
            return hook, {}
        by_curl = _curl(self.curl, self.url, self.folder / "curl.mp4", self.size)
        hashed = _curl(
            self.curl, self.url, self.folder / "curl.mp4", self.size, check=(self.sha256_tool, self.sha256)
        )
        return hook, by_curl | {"hashed": hashed}


#: The SHA-256 tools tried for curl's like-for-like row, fastest first: OpenSSL's uses the CPU's SHA
#: instructions; coreutils' sha256sum (always there) may not.
SHA256_TOOLS = (["openssl", "dgst", "-sha256", "-r"], ["sha256sum"])


def _sha256_tool() -> list[str]:
    return next(tool for tool in SHA256_TOOLS if shutil.which(tool[0]))


def _curl(
    curl: str, url: str, target: Path, size: int, check: tuple[list[str], str] | None = None
) -> dict[str, Any]:
    """``curl -o`` on the same URL: the throughput the machine and the emulator allow without Python.
    With ``check`` (a SHA-256 tool's command and the digest expected), then the file's SHA-256 by that
    tool, compared: what a shell script that keeps a checksum of every video does."""
    started = time.perf_counter()
    subprocess.run([curl, "-s", "-S", "-f", "-o", str(target), url], check=True)
    result: dict[str, Any] = {}
    if check is not None:
        tool, sha256 = check
        hashed = subprocess.run([*tool, str(target)], check=True, capture_output=True, text=True)
        result["sha256_ok"] = hashed.stdout.split()[0] == sha256
    seconds = time.perf_counter() - started
    got = target.stat().st_size
    target.unlink()
    return result | {"seconds": seconds, "mib_per_s": got / seconds / MIB, "bytes_ok": got == size}


def _curl_version(curl: str | None) -> str:
    if not curl:
        return "curl not found"
    first_line = subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return " ".join(first_line.split()[:2])  # "curl 7.88.1"


def _fs_kind(folder: Path) -> str:
    if str(folder).startswith("/dev/shm"):
        return "tmpfs (/dev/shm)"
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(folder)], capture_output=True, text=True).stdout
    return f"{kind.strip() or 'disk'} ({folder.parent})"


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
