"""``python -m airflow_provider_veo.testing.emulator``: serve the emulator from a shell until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from airflow_provider_veo.testing.emulator.records import JsonLinesFile, RecordedRequest, describe
from airflow_provider_veo.testing.emulator.scenario import TERMINAL_STATUSES, Scenario
from airflow_provider_veo.testing.emulator.server import PROFILES, VeoEmulator

DESCRIPTION = """\
A local stand-in for CometAPI's /v1/videos API: create, poll, /content and a separate "CDN" for
video_url, on 127.0.0.1. It prints the Airflow connection that points at it (an
AIRFLOW_CONN_VEO_DEFAULT line to paste into the shell that runs Airflow) and serves until Ctrl-C.
Nothing is billed and nothing leaves the machine: every video is the same short sample clip."""

EPILOG = """\
A single job can be steered from its prompt: "[emu:outcome=failed]", "[emu:polls=5]",
"[emu:corrupt_download=true]", "[emu:errors=503|502]" (any Scenario field of
airflow_provider_veo.testing.emulator, or its short alias). Example:

  python -m airflow_provider_veo.testing.emulator --port 8765 --seconds-until-done 20 \\
      --record requests.jsonl --verbose"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_veo.testing.emulator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("where it listens")
    where.add_argument(
        "--host", default="127.0.0.1", help="address both listeners bind to (default: %(default)s)"
    )
    where.add_argument(
        "--port",
        type=int,
        default=8765,
        help="port of the API, the connection's Base URL; 0 picks a free one (default: %(default)s)",
    )
    where.add_argument(
        "--cdn-port",
        type=int,
        default=0,
        help="port of the listener serving the finished videos' video_url; 0 picks a free one "
        "(default: %(default)s)",
    )
    where.add_argument(
        "--api-key",
        default="test-key",
        help="the only key accepted (Authorization: Bearer KEY); other keys are answered 401 "
        "(default: %(default)s)",
    )
    how = parser.add_argument_group("how it answers")
    how.add_argument(
        "--server",
        choices=sorted(PROFILES),
        default="docs",
        help="'docs' answers as CometAPI's API documentation describes it; 'new-api' as the gateway "
        "CometAPI really runs: its error shapes, X-Oneapi-Request-Id, 'unknown' jobs, task_ ids and "
        "video_url at its own authenticated /content (default: %(default)s)",
    )
    how.add_argument(
        "--id-style",
        choices=("colon", "task"),
        default=None,
        help="shape of the video ids handed out: 'colon' (veo3.1:1712345678-AbC...) or 'task' "
        "(task_ and 32 characters); default: the profile's ('colon' for docs, 'task' for new-api)",
    )
    how.add_argument(
        "--polls",
        type=int,
        default=Scenario.polls_until_done,
        metavar="N",
        help="status reads a job answers as not finished (queued, then in_progress with rising "
        "progress) before it is completed (default: %(default)s)",
    )
    how.add_argument(
        "--seconds-until-done",
        type=float,
        default=None,
        metavar="SECONDS",
        help="finish each job this many seconds after it was created, however often it is polled, "
        "as a real render does; wins over --polls",
    )
    how.add_argument(
        "--outcome",
        choices=sorted(TERMINAL_STATUSES),
        default=Scenario.outcome,
        help="how every job ends: 'completed' with a video, or 'failed'/'error' with a content "
        "policy refusal (default: %(default)s)",
    )
    watch = parser.add_argument_group("what it tells you")
    watch.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write every request to FILE as JSON lines, one per request once it is answered, "
        "flushed at once: listener, method, path, headers (the Authorization header included), "
        "form fields, file parts (name, size, sha256), the status answered (null for a dropped "
        "connection) and the arrival time 'at'; FILE is overwritten",
    )
    watch.add_argument(
        "--verbose",
        action="store_true",
        help="print one line per request: time, listener (api or cdn), method, path and status, and "
        "for a create the model, seconds and the start of the prompt",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the emulator until Ctrl-C (or SIGTERM), printing the Airflow connection that points at it."""
    args = build_parser().parse_args(argv)
    scenario = Scenario(
        polls_until_done=args.polls, seconds_until_done=args.seconds_until_done, outcome=args.outcome
    )
    emulator = VeoEmulator(
        args.api_key,
        scenario=scenario,
        id_style=args.id_style,
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
        server=args.server,
    )
    record_file = JsonLinesFile(args.record) if args.record else None
    if record_file is not None:
        emulator.on_request(record_file)
    if args.verbose:
        emulator.on_request(_print_line)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with emulator:
            where = f"API {emulator.url}, CDN {emulator.cdn_url}"
            print(f"Veo emulator: {where} ({args.server} profile)", flush=True)
            print(f"export AIRFLOW_CONN_VEO_DEFAULT='{emulator.connection_json()}'", flush=True)
            if record_file is not None:
                print(f"Recording every request to {record_file.path.resolve()}", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                print("Stopping.", flush=True)
    finally:
        if record_file is not None:
            record_file.close()


_STDOUT_LOCK = threading.Lock()


def _print_line(record: RecordedRequest) -> None:
    """``--verbose``: requests are served on many threads, so each line is written whole."""
    with _STDOUT_LOCK:
        sys.stdout.write(describe(record) + "\n")
        sys.stdout.flush()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stop as Ctrl-C does: close the listeners and the record file


if __name__ == "__main__":
    main()
