"""One download with ``VeoHook.download_video`` in a fresh process: throughput and peak memory growth.

The job and its ``video_url`` come from the caller (``run.py`` fetches the same URL with curl); the
connection comes from ``AIRFLOW_CONN_VEO_DEFAULT``. Peak memory growth is the peak RSS during the
download (``VmHWM``, i.e. ``ru_maxrss``, reset just before through ``/proc/self/clear_refs``) minus
the RSS just before it, once the hook has read its connection and built its session (by reading the
job once through the public ``get_video``).
Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from benchlib import emit, rss_bytes

from airflow_provider_veo.api import VideoJob
from airflow_provider_veo.hooks.veo import VeoHook


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", required=True, help="the completed job, as JSON (its video_url is used)")
    parser.add_argument("--destination", required=True)
    parser.add_argument("--expected-sha256", required=True)
    args = parser.parse_args()
    job = VideoJob.from_dict(json.loads(args.job))
    hook = VeoHook()
    hook.get_video(job.video_id)  # Reads the connection and builds the session, before measuring.
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
        }
    )


if __name__ == "__main__":
    main()
