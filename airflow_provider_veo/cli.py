"""``python -m airflow_provider_veo``: check a Veo job by its id, or download its video, from a shell.

For the on-call engineer who has only a video id from a task log. The connection is resolved the
way a task resolves it (``AIRFLOW_CONN_VEO_DEFAULT``, a secrets backend or the metadata DB), through
:class:`~airflow_provider_veo.hooks.veo.VeoHook`, which is imported only once a command runs. The
API key is never printed; a failure exits 1 with the provider's message.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from airflow_provider_veo import api

if TYPE_CHECKING:
    from airflow_provider_veo.hooks.veo import VeoHook

PROG = "python -m airflow_provider_veo"

DESCRIPTION = """\
Check a Veo job by its video id, or download its video, with the key of an Airflow connection of
type veo (AIRFLOW_CONN_VEO_DEFAULT, a secrets backend, or the metadata DB). The key is never printed."""

EPILOG = f"""\
examples:
  {PROG} status 'veo3.1-fast:1712345678-AbC'
  {PROG} download 'veo3.1-fast:1712345678-AbC' /data/videos/
  {PROG} download task_0123 s3://aws_default@bucket/videos/ --conn-id veo_prod"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser(
        "status",
        help="print a job: status, progress, model, where its video is, its error",
        description="Print a job as CometAPI describes it. Exits 0 whenever the job could be read, "
        "whatever its status.",
    )
    status.add_argument("video_id", metavar="VIDEO_ID", help="the id from a 'Submitted video' log line")
    status.set_defaults(handler=_status)

    download = commands.add_parser(
        "download",
        help="download a completed job's video and print what was written",
        description="Stream a completed job's MP4 to DESTINATION, verified whole before it appears "
        "there, and print its uri, bytes, sha256, duration and frame size.",
    )
    download.add_argument("video_id", metavar="VIDEO_ID", help="the id of a completed job")
    download.add_argument(
        "destination",
        metavar="DESTINATION",
        help="a local file or folder (ending in '/': the file is named after the id), or an object "
        "storage URI such as s3://conn_id@bucket/videos/",
    )
    download.set_defaults(handler=_download)

    for command in (status, download):
        command.add_argument(
            "--conn-id", default="veo_default", help="the Airflow connection to use (default: %(default)s)"
        )
        command.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 with the error's message on stderr otherwise."""
    args = build_parser().parse_args(argv)
    # Read connections as `airflow connections get` does: environment variables, the configured
    # secrets backends, then the metadata DB. Outside a task, Airflow 3 leaves the DB out unless
    # the process says it is a server-side one, as Airflow's own connection commands do.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    handler: Callable[[argparse.Namespace, TextIO], None] = args.handler
    try:
        with _results_stream() as out:
            handler(args, out)
    except api.VeoJobNotFoundError as exc:
        return _fail(_unknown_id(args, exc))
    except api.VeoError as exc:
        return _fail(str(exc))
    except _not_found_errors() as exc:
        return _fail(
            f"{exc}: define it as AIRFLOW_CONN_{args.conn_id.upper()} (JSON or URI) or with "
            "`airflow connections add`, in the environment this command runs in"
        )
    except Exception as exc:  # an object store's own error, a broken Airflow setup: no traceback
        return _fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    return 0


def _status(args: argparse.Namespace, out: TextIO) -> None:
    hook = _hook(args.conn_id)
    job = hook.get_video(args.video_id)
    content_url = None
    if job.state is api.JobState.SUCCEEDED and not job.video_url:
        connection = hook.get_connection(args.conn_id)
        base = api.base_url_from(connection.host, connection.schema, connection.port)
        content_url = base + api.video_path(job.video_id) + "/content"
    if args.json:
        times = {"created_at": _utc(job.created_at), "completed_at": _utc(job.completed_at)}
        _print_json(out, {**job.to_dict(), **times, "state": job.state.value, "content_url": content_url})
        return
    error = ": ".join(part for part in (job.error_code, job.error_message) if part) or None
    _print_fields(
        out,
        {
            "video_id": job.video_id,
            "status": f"{job.status} ({job.state.value})",
            "progress": None if job.progress is None else f"{job.progress}%",
            "model": job.model,
            "seconds": job.seconds,
            "size": job.size,
            "video_url": job.video_url,
            "content": content_url and f"{content_url} (with the connection's key)",
            "error": error,
            "created_at": _utc(job.created_at),
            "completed_at": _utc(job.completed_at),
        },
    )
    if job.state is api.JobState.SUCCEEDED:
        fetch = command("download", job.video_id, "DESTINATION", conn_id=args.conn_id)
        out.write("\n" + api.shown(f"Fetch it with: {fetch}") + "\n")
    elif not job.state.is_terminal:
        again = command("status", job.video_id, conn_id=args.conn_id)
        out.write("\n" + api.shown(f"Not finished yet: check again with {again}") + "\n")


def _download(args: argparse.Namespace, out: TextIO) -> None:
    stored = _hook(args.conn_id).download_video(args.video_id, args.destination)
    if args.json:
        _print_json(out, dict(stored))
        return
    duration = stored["duration_seconds"]
    _print_fields(
        out,
        {
            "video_id": stored["video_id"],
            "uri": stored["uri"],
            "bytes": stored["bytes"],
            "sha256": stored["sha256"],
            "duration": None if duration is None else f"{duration:g} s",
            "width": stored["width"],
            "height": stored["height"],
        },
    )


@contextlib.contextmanager
def _results_stream() -> Iterator[TextIO]:
    """Standard output for the results only: while a command runs, whatever else writes to file
    descriptor 1 (Airflow's loggers, bound to it when Airflow is imported) goes to standard error,
    so ``--json`` output can be piped."""
    sys.stdout.flush()
    try:
        if sys.stdout.fileno() != 1:
            raise OSError("standard output is not file descriptor 1")
        saved = os.dup(1)
    except (OSError, ValueError):  # redirected in-process (io.UnsupportedOperation is both)
        yield sys.stdout
        return
    os.dup2(2, 1)
    results = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield results
    finally:
        results.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _utc(epoch: int | None) -> str | None:
    """An API time (epoch seconds) as ISO 8601 in UTC, e.g. ``2026-01-31T09:15:00Z``."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def command(verb: str, *arguments: str, conn_id: str = "veo_default") -> str:
    """This CLI's command line for ``verb``, to paste into a shell: every argument is shell-quoted, so
    it runs nothing an id or a path holds, and ``--conn-id`` is named only when it is not the default."""
    words = [PROG, verb, *(shlex.quote(argument) for argument in arguments)]
    if conn_id != "veo_default":
        words += ["--conn-id", shlex.quote(conn_id)]
    return " ".join(words)


def _unknown_id(args: argparse.Namespace, error: api.VeoJobNotFoundError) -> str:
    """What "not found" means for an id typed by hand, and what to check."""
    return api.shown(
        f"CometAPI has no video {args.video_id!r} for the connection {args.conn_id!r} ({error}). Check that "
        "the id is whole and exact (copy it from the task log's 'Submitted video' line, in quotes: ids "
        "may hold ':'), and that the connection's key and Base URL are those of the account that created "
        "it. A job created in the last minute may not be stored yet: try again with "
        + command("status", args.video_id, conn_id=args.conn_id)
    )


def _hook(conn_id: str) -> VeoHook:
    from airflow_provider_veo.hooks.veo import VeoHook

    return VeoHook(veo_conn_id=conn_id)


def _print_fields(out: TextIO, fields: Mapping[str, object]) -> None:
    """``name: value`` lines, aligned; fields without a value are left out."""
    shown = {name: value for name, value in fields.items() if value is not None}
    width = max(len(name) for name in shown) + 1
    for name, value in shown.items():  # control characters escaped: a server's id cannot drive the terminal
        out.write(f"{name + ':':<{width}} {api.shown(str(value))}\n")


def _print_json(out: TextIO, data: Mapping[str, Any]) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"error: {api.shown(message)}\n")
    return code


def _not_found_errors() -> tuple[type[Exception], ...]:
    """Airflow's "connection is not defined" error: in ``airflow.sdk`` from 3.2, in ``airflow`` before."""
    found: list[type[Exception]] = []
    for module in ("airflow.sdk.exceptions", "airflow.exceptions"):
        try:
            found.append(importlib.import_module(module).AirflowNotFoundException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)
