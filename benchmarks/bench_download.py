"""One download with ``VeoHook.download_video`` in a fresh process: throughput, peak memory growth, and
where the time goes (``--bare``: the same URL with bare ``requests`` instead, streamed, hashed and
written, with no MP4 check, fsync nor rename: the library's floor).

The job and its ``video_url`` come from the caller (``run.py`` fetches the same URL with curl); the
connection comes from ``AIRFLOW_CONN_VEO_DEFAULT``. Peak memory growth is the peak RSS during the
download (``VmHWM``, i.e. ``ru_maxrss``, reset just before through ``/proc/self/clear_refs``) minus
the RSS just before it, once the hook has read its connection and built its session (by reading the
job once through the public ``get_video``).
The phases are timed by wrapping the steps of a download: the request until its headers (connection
set-up included), the staged file's creation, the free-space check, the start of the one helper thread
(it hashes, walks the MP4 and keeps the deadline), the first chunk, the wait for that thread to hash the
chunks still queued when the body has ended (the hashing tail), and the publishing (fsync, rename); what
remains is the body streaming past. Afterwards, SHA-256 alone is timed over as many bytes in memory
(the CPU curl has no counterpart for).
Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from benchlib import emit, rss_bytes

from airflow_provider_veo.api import DOWNLOAD_CHUNK_BYTES, VideoJob
from airflow_provider_veo.destinations import StagedFile
from airflow_provider_veo.hooks import download
from airflow_provider_veo.hooks.veo import VeoHook

#: Phase name -> the step it times, as (owner, attribute).
PHASES: dict[str, tuple[Any, str]] = {
    "request to headers": (VeoHook, "_open_video"),
    "staged file": (StagedFile, "__enter__"),
    "free-space check": (download, "_check_room"),
    "thread start": (download._Hasher, "start"),
    "hashing tail": (download._Hasher, "finish"),
    "fsync and rename": (StagedFile, "publish"),
}


def max_rss_kib() -> int:
    """The peak RSS (``VmHWM``, the same high-water mark as ``ru_maxrss``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux 4.0+), so the peak seen is the download's own."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def time_phases(spent: dict[str, float]) -> None:
    """Wrap each phase's step so that its duration adds up in ``spent`` (seconds), and the first chunk's
    arrival (from the headers) too."""
    for name, (owner, attribute) in PHASES.items():
        step = getattr(owner, attribute)

        def timed(*args: Any, _step: Callable[..., Any] = step, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _step(*args, **kwargs)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - started

        setattr(owner, attribute, functools.wraps(step)(timed))
    chunks = download._body_chunks

    def first_chunk_timed(response: requests.Response) -> Iterator[bytes]:
        started = time.perf_counter()
        body = chunks(response)
        first = next(body, None)
        spent["first chunk"] = time.perf_counter() - started
        if first is not None:
            yield first
            yield from body

    download._body_chunks = first_chunk_timed


def bare(url: str, folder: str) -> dict[str, Any]:
    """The same URL with bare requests: streamed, hashed and written (no MP4 check, fsync nor rename)."""
    with requests.Session() as session:
        started = time.perf_counter()
        cpu_before = time.process_time()
        digest = hashlib.sha256()
        path = os.path.join(folder, "bare.mp4")
        with session.get(url, stream=True, timeout=60) as response, open(path, "wb") as sink:
            response.raise_for_status()
            for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                digest.update(chunk)
                sink.write(chunk)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    size = os.path.getsize(path)
    os.unlink(path)
    return {
        "bytes": size,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "mib_per_s": size / seconds / 2**20,
        "sha256": digest.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", required=True, help="the completed job, as JSON (its video_url is used)")
    parser.add_argument("--destination", required=True)
    parser.add_argument("--expected-sha256", required=True)
    parser.add_argument("--bare", action="store_true", help="bare requests instead of download_video")
    args = parser.parse_args()
    job = VideoJob.from_dict(json.loads(args.job))
    if args.bare:
        result = bare(job.video_url or "", args.destination)
        emit(result | {"sha256_ok": result.pop("sha256") == args.expected_sha256})
        return
    hook = VeoHook()
    hook.get_video(job.video_id)  # Reads the connection and builds the session, before measuring.
    spent: dict[str, float] = {}
    time_phases(spent)
    peak_reset = reset_peak()
    rss_before = rss_bytes() // 1024
    peak_before = max_rss_kib()
    cpu_before = time.process_time()
    started = time.perf_counter()
    written = hook.download_video(job.video_id, args.destination, job=job)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    peak_after = max_rss_kib()
    os.unlink(written["uri"])
    # What SHA-256 alone costs for this size on this machine, one 1 MiB block at a time: curl does not
    # hash, so this CPU is the part of the provider's work curl has no counterpart for.
    block = bytes(DOWNLOAD_CHUNK_BYTES)
    hashing_started = time.thread_time()
    digest = hashlib.sha256()
    for _ in range(written["bytes"] // len(block)):
        digest.update(block)
    emit(
        {
            "bytes": written["bytes"],
            "seconds": seconds,
            "cpu_seconds": cpu,
            "mib_per_s": written["bytes"] / seconds / 2**20,
            "sha256_ok": written["sha256"] == args.expected_sha256,
            "rss_before_mib": rss_before / 1024,
            "peak_growth_mib": (max(peak_after, peak_before) - rss_before) / 1024,
            "peak_reset": peak_reset,
            "phases_ms": {name: spent.get(name, 0.0) * 1000 for name in (*PHASES, "first chunk")},
            "sha256_alone_cpu_s": time.thread_time() - hashing_started,
        }
    )


if __name__ == "__main__":
    main()
