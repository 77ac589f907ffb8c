"""One table of every video a mapped generate task made in a run: what was stored, what failed, and
which paid jobs never got stored (with the command that fetches them later)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from airflow.sdk import BaseOperator

from airflow_provider_veo import api
from airflow_provider_veo.api import JobState, VeoError, VeoInputError
from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.hooks import VeoHookMixin
from airflow_provider_veo.operators.veo import UNDELIVERABLE_XCOM_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context

#: A video is at ``uri``.
STORED = "stored"
#: No video: the job failed (failed jobs are not billed), or the task failed before submitting one.
FAILED = "failed"
#: The job was submitted, and completed or is still rendering, but no video was stored.
PAID_NOT_STORED = "paid but not stored"
#: The job was submitted but could not be read back to tell which of the two it is.
UNKNOWN = "unknown"
#: The job completed (and was billed) but the API cannot deliver its video: nothing can fetch it.
UNDELIVERABLE = "paid but undeliverable"

COLUMNS = (
    "map_index",
    "status",
    "prompt",
    "video_id",
    "uri",
    "bytes",
    "task_state",
    "note",
    "fetch_command",
)
_LOG_PROMPT_CHARS = 40


class SummaryRow(TypedDict):
    """One video of the summary: a map index of the generate task."""

    map_index: int
    #: :data:`STORED`, :data:`FAILED`, :data:`PAID_NOT_STORED`, :data:`UNDELIVERABLE` or :data:`UNKNOWN`.
    status: str
    prompt: str | None
    video_id: str | None
    uri: str | None
    bytes: int | None
    #: The generate task instance's state (``success``, ``failed``, ``upstream_failed``...).
    task_state: str | None
    #: Why a video is missing: the job's error, its status, or that nothing was submitted.
    note: str | None
    #: For a job that may still be fetched: ``python -m airflow_provider_veo download <id> <folder>``.
    fetch_command: str | None


class VeoBatchSummaryOperator(VeoHookMixin, BaseOperator):
    """Write one table of every video a (mapped) generate task made in this run, and log it.

    Put it downstream of a mapped :class:`~airflow_provider_veo.operators.veo.VeoGenerateVideoOperator`
    (``generate >> summary``); it runs once every map index is done (``trigger_rule="all_done"``).
    For each map index it reads the generate task's state and XComs (the stored video, and the
    ``video_id`` pushed as soon as a job is submitted) and, where no video was stored, asks the API
    what became of the job: failed (not billed), or completed or still rendering (paid, not stored:
    the row gets the command that fetches it later, into the summary's folder).

    The table is written all-or-nothing to ``destination``, CSV or JSON by its suffix: a local path
    or an object storage URI (``s3://conn_id@bucket/videos/summary.csv``), usually next to the
    videos. It is logged as a table and returned (XCom) as a list of :class:`SummaryRow` dicts.

    :param generate_task_id: the generate task whose videos to list (mapped or not).
    :param destination: where the table goes; ``.csv`` or ``.json``.
    :param veo_conn_id: the connection used to read back jobs that were not stored.
    :param fail_on_missing: fail this task (without retry) when any video was not stored, after
        writing the table and pushing the rows. A run's state follows its leaf tasks, so a summary
        that succeeded would otherwise mark a nightly run with failed videos as a success.
    """

    template_fields: Sequence[str] = ("generate_task_id", "destination")
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        generate_task_id: str,
        destination: str,
        veo_conn_id: str = "veo_default",
        fail_on_missing: bool = True,
        trigger_rule: str = "all_done",
        **kwargs: Any,
    ) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        self.generate_task_id = generate_task_id
        self.destination = destination
        self.veo_conn_id = veo_conn_id
        self.fail_on_missing = fail_on_missing

    def execute(self, context: Context) -> list[SummaryRow]:
        from airflow_provider_veo.destinations import parse_destination

        destination = parse_destination(self.destination)
        target = destination.file_for("summary")
        file_format = target.name.rpartition(".")[2].lower() if "." in target.name else ""
        if file_format not in ("csv", "json"):
            raise VeoInputError(
                "destination",
                f"give the summary a file name ending in .csv or .json, got {self.destination!r}",
            )
        if self.generate_task_id not in self.upstream_task_ids:
            self.log.warning(
                "This task is not downstream of %r: it may run before that task's videos are stored",
                self.generate_task_id,
            )
        rows = self.collect_rows(context, target.folder)
        uri = target.write_bytes(render(rows, file_format).encode("utf-8"))
        self._log_table(rows, uri)
        missing = [row for row in rows if row["status"] != STORED]
        if missing and self.fail_on_missing:
            context["ti"].xcom_push(key="return_value", value=rows)
            raise AirflowFailException(
                f"{len(missing)} of {len(rows)} videos of {self.generate_task_id!r} were not stored "
                f"({_counts(missing)}); the table is logged above and written to {uri}"
            )
        return rows

    # -- reading the run --------------------------------------------------------------------

    def collect_rows(self, context: Context, fetch_folder: str) -> list[SummaryRow]:
        """One row per map index of the generate task in this run, in map-index order."""
        ti = context["ti"]
        states = _task_states(ti, self.generate_task_id)
        indexes = sorted(states)
        stored_videos = _pull(ti, self.generate_task_id, "return_value", indexes)
        video_ids = _pull(ti, self.generate_task_id, "video_id", indexes)
        undeliverable = _pull(ti, self.generate_task_id, UNDELIVERABLE_XCOM_KEY, indexes)
        prompts = _requested_prompts(self, context, indexes)
        rows = []
        for index, stored, pushed_id, unavailable in zip(
            indexes, stored_videos, video_ids, undeliverable, strict=True
        ):
            video_id = pushed_id if isinstance(pushed_id, str) and pushed_id else None
            row = SummaryRow(
                map_index=index,
                status=FAILED,
                prompt=prompts.get(index),
                video_id=video_id,
                uri=None,
                bytes=None,
                task_state=states[index],
                note=None,
                fetch_command=None,
            )
            if isinstance(stored, Mapping) and stored.get("uri"):
                row["status"] = STORED
                row["video_id"] = str(stored.get("video_id") or video_id or "") or None
                row["uri"] = str(stored["uri"])
                row["bytes"] = stored.get("bytes")
                row["prompt"] = stored.get("prompt") or row["prompt"]
            elif video_id is None:
                row["note"] = f"no job was submitted (task {states[index] or 'not run'})"
            elif unavailable:
                row["status"] = UNDELIVERABLE
                row["note"] = (
                    "the job completed and was billed, but CometAPI cannot deliver its video, so it "
                    "cannot be fetched; ask CometAPI's support with the video id and request id: "
                    f"{unavailable}"
                )
            else:
                row["status"], row["note"] = self._unstored_job(video_id)
                if row["status"] != FAILED:
                    row["fetch_command"] = self.fetch_command(video_id, fetch_folder)
            rows.append(row)
        return rows

    def _unstored_job(self, video_id: str) -> tuple[str, str]:
        """The status and note of a submitted job whose video was not stored, as the API tells it."""
        try:
            job = self.hook.get_video(video_id)
        except VeoError as exc:
            return UNKNOWN, f"the job could not be read: {exc}"
        if job.state is JobState.FAILED:
            return FAILED, str(job.failure())
        if job.state is JobState.SUCCEEDED:
            return PAID_NOT_STORED, "the job completed; its download failed"
        return PAID_NOT_STORED, f"the job is still {job.status!r}: fetch it once it completes"

    def fetch_command(self, video_id: str, folder: str) -> str:
        """The shell command that downloads ``video_id`` into ``folder`` later."""
        from airflow_provider_veo.cli import command

        return command("download", video_id, folder, conn_id=self.veo_conn_id)

    # -- the log ----------------------------------------------------------------------------

    def _log_table(self, rows: list[SummaryRow], uri: str) -> None:
        self.log.info(
            "Batch summary of %r: %d videos (%s), written to %s",
            self.generate_task_id,
            len(rows),
            _counts(rows) or "none",
            uri,
        )
        for line in table_lines(rows):
            self.log.info("%s", line)
        for row in rows:
            if row["fetch_command"]:
                self.log.info(
                    "Map index %d is not stored; fetch it with: %s",
                    row["map_index"],
                    api.shown(row["fetch_command"]),
                )


def render(rows: Sequence[SummaryRow], file_format: str) -> str:
    """The table as the file holds it: CSV with a header line, or a JSON list of objects."""
    if file_format == "json":
        return json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: "" if row[name] is None else row[name] for name in COLUMNS} for row in rows)  # type: ignore[literal-required]
    return buffer.getvalue()


def table_lines(rows: Sequence[SummaryRow]) -> list[str]:
    """The table for the task log: fixed-width columns, prompts shortened to one line."""
    header = ("map_index", "status", "bytes", "video_id", "prompt", "uri, or why there is none")
    cells = [
        (
            str(row["map_index"]),
            row["status"],
            "" if row["bytes"] is None else str(row["bytes"]),
            api.shown(row["video_id"] or ""),
            api.excerpt(row["prompt"] or "", _LOG_PROMPT_CHARS),
            api.shown(row["uri"] or row["note"] or ""),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    ]


def _counts(rows: Sequence[SummaryRow]) -> str:
    found: dict[str, int] = {}
    for row in rows:
        found[row["status"]] = found.get(row["status"], 0) + 1
    return ", ".join(f"{count} {status}" for status, count in found.items())


def _task_states(ti: Any, task_id: str) -> dict[int, str | None]:
    """The state of every map index of ``task_id`` in this run (``-1`` for an unmapped task)."""
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=[task_id], run_ids=[ti.run_id])
    states: dict[int, str | None] = {}
    for key, state in (found.get(ti.run_id) or {}).items():
        if key == task_id:
            index = -1
        elif key.startswith(f"{task_id}_") and key[len(task_id) + 1 :].isdigit():
            index = int(key[len(task_id) + 1 :])
        else:
            continue
        states[index] = None if state is None else str(getattr(state, "value", state))
    return states


def _pull(ti: Any, task_id: str, key: str, indexes: list[int]) -> list[Any]:
    if not indexes:
        return []
    values = ti.xcom_pull(task_ids=task_id, key=key, map_indexes=indexes)
    return list(values) if isinstance(values, list) else [values]


def _requested_prompts(operator: BaseOperator, context: Context, indexes: list[int]) -> dict[int, str]:
    """The prompt each map index was given, for rows without a stored video to read it from.

    Read from the generate task's definition: a literal ``expand(prompt=[...])`` (with other literal
    lists, in Airflow's order), ``expand_kwargs([{...}])``, a list from an upstream task's XCom, or
    a prompt given to ``partial()`` without a template. Anything else gives no prompt.
    """
    try:
        task: Any = operator.dag.get_task(str(getattr(operator, "generate_task_id", "")))
        expand_input = getattr(task, "expand_input", None)
        value = getattr(expand_input, "value", None)
        if value is None:  # not mapped
            return _same_for_all(getattr(task, "prompt", None), indexes)
        if isinstance(value, Mapping):  # expand(prompt=..., seconds=...): the last key varies fastest
            lists = {key: _resolved(item, context) for key, item in value.items()}
            if "prompt" not in lists:
                return _same_for_all(task.partial_kwargs.get("prompt"), indexes)
            found = {}
            for index in indexes:
                position = index
                for key in reversed(list(lists)):
                    length = len(lists[key])
                    if key == "prompt":
                        found[index] = lists[key][position % length]
                        break
                    position //= length
            return {index: str(prompt) for index, prompt in found.items() if _literal_prompt(prompt)}
        dicts = _resolved(value, context)  # expand_kwargs([{"prompt": ...}, ...])
        return {
            index: str(dicts[index]["prompt"])
            for index in indexes
            if 0 <= index < len(dicts) and isinstance(dicts[index], Mapping) and "prompt" in dicts[index]
        }
    except Exception:  # best effort: a row without a prompt is still a useful row
        return {}


def _resolved(value: Any, context: Context) -> Any:
    """A literal as it is; an upstream task's XCom (``XComArg``) as it resolves in this run."""
    if hasattr(value, "resolve") and not isinstance(value, (list, tuple, dict)):
        return value.resolve(context)
    return value


def _same_for_all(prompt: object, indexes: list[int]) -> dict[int, str]:
    return {index: str(prompt) for index in indexes} if _literal_prompt(prompt) else {}


def _literal_prompt(prompt: object) -> bool:
    return isinstance(prompt, str) and bool(prompt) and "{{" not in prompt
