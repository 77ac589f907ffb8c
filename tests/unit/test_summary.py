"""The batch summary's decisions, with a fake task instance and hook: every way a map index can end,
the prompt of a failed index read from the generate task's definition, the files it writes.

``tests/e2e/test_summary.py`` runs it for real in ``dag.test()`` against the emulator."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_veo.api import VeoInputError, VeoTransientError, VideoJob
from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.operators.summary import (
    COLUMNS,
    FAILED,
    PAID_NOT_STORED,
    STORED,
    UNKNOWN,
    VeoBatchSummaryOperator,
)
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

from .conftest import Logs

START = pendulum.datetime(2026, 1, 1, tz="UTC")


class FakeTI:
    """What the summary reads of the run: the generate task's states and XComs per map index."""

    dag_id = "nightly"
    run_id = "scheduled__2026-01-02"

    def __init__(self, states: dict[int, str | None], xcoms: dict[tuple[str, int], Any]) -> None:
        self.states = states
        self.xcoms = xcoms
        self.pushed: dict[str, Any] = {}

    def get_task_states(self, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict[str, Any]:
        assert (dag_id, task_ids, run_ids) == (self.dag_id, ["generate_video"], [self.run_id])
        keys = {index: "generate_video" if index < 0 else f"generate_video_{index}" for index in self.states}
        return {self.run_id: {keys[index]: state for index, state in self.states.items()}}

    def xcom_pull(self, task_ids: str, key: str, map_indexes: list[int]) -> list[Any]:
        assert task_ids == "generate_video"
        return [self.xcoms.get((key, index)) for index in map_indexes]

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class FakeHook:
    def __init__(self, jobs: dict[str, VideoJob | Exception]) -> None:
        self.jobs = jobs

    def get_video(self, video_id: str) -> VideoJob:
        job = self.jobs[video_id]
        if isinstance(job, Exception):
            raise job
        return job


def summary_of(prompts: list[str], destination: str, **kwargs: Any) -> VeoBatchSummaryOperator:
    with DAG("nightly", schedule=None, start_date=START):
        videos = VeoGenerateVideoOperator.partial(task_id="generate_video", destination="/videos/").expand(
            prompt=prompts
        )
        summary = VeoBatchSummaryOperator(
            task_id="summary", generate_task_id="generate_video", destination=destination, **kwargs
        )
        videos >> summary
    return summary


def run(summary: VeoBatchSummaryOperator, ti: FakeTI, jobs: dict[str, VideoJob | Exception]) -> Any:
    summary.__dict__["hook"] = FakeHook(jobs)  # the cached hook property
    return summary.execute({"ti": ti})  # type: ignore[arg-type]


def stored_video(video_id: str, uri: str, **fields: Any) -> dict[str, Any]:
    return {"video_id": video_id, "uri": uri, "bytes": 1234, "sha256": "0" * 64, **fields}


def test_every_way_a_video_can_end(tmp_path: Path, logs: Logs) -> None:
    prompts = [f"prompt {i}" for i in range(6)]
    summary = summary_of(prompts, f"{tmp_path}/summary.csv", veo_conn_id="veo_nightly")
    ti = FakeTI(
        {0: "success", 1: "failed", 2: "failed", 3: "failed", 4: "failed", 5: "upstream_failed"},
        {
            ("return_value", 0): stored_video("v0", "/videos/v0.mp4", prompt="prompt 0 (from the result)"),
            ("video_id", 0): "v0",
            **{("video_id", i): f"v{i}" for i in (1, 2, 3, 4)},
        },
    )
    jobs: dict[str, VideoJob | Exception] = {
        "v1": VideoJob("v1", "failed", error_code="content_policy_violation", error_message="Blocked"),
        "v2": VideoJob("v2", "completed", video_url="https://cdn/v2.mp4"),
        "v3": VideoJob("v3", "in_progress", progress=40),
        "v4": VeoTransientError("CometAPI answered HTTP 503: busy"),
    }
    with pytest.raises(AirflowFailException, match=r"5 of 6 videos of 'generate_video' were not stored"):
        run(summary, ti, jobs)

    rows = ti.pushed["return_value"]  # pushed before failing, for whatever reads the XCom
    assert [(r["map_index"], r["status"], r["task_state"]) for r in rows] == [
        (0, STORED, "success"),
        (1, FAILED, "failed"),
        (2, PAID_NOT_STORED, "failed"),
        (3, PAID_NOT_STORED, "failed"),
        (4, UNKNOWN, "failed"),
        (5, FAILED, "upstream_failed"),
    ]
    assert [r["prompt"] for r in rows] == ["prompt 0 (from the result)", *prompts[1:]]
    assert rows[0]["uri"] == "/videos/v0.mp4" and rows[0]["bytes"] == 1234
    assert (
        rows[1]["note"]
        == "Video v1 ended with status 'failed', error code 'content_policy_violation': Blocked"
    )
    assert rows[3]["note"] == "the job is still 'in_progress': fetch it once it completes"
    assert rows[4]["note"] == "the job could not be read: CometAPI answered HTTP 503: busy"
    assert rows[5]["video_id"] is None and rows[5]["note"] == "no job was submitted (task upstream_failed)"
    fetch = f"python -m airflow_provider_veo download v{{}} {tmp_path}/ --conn-id veo_nightly"
    assert [r["fetch_command"] for r in rows] == [
        None,
        None,
        fetch.format(2),
        fetch.format(3),
        fetch.format(4),
        None,
    ]

    with (tmp_path / "summary.csv").open(newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == [r["status"] for r in rows]
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
    assert (
        "Batch summary of 'generate_video': 6 videos (1 stored, 2 failed, 2 paid but not stored, 1 unknown)"
        in (logs.text)
    )
    assert f"Map index 2 is not stored; fetch it with: {fetch.format(2)}" in logs.text


def test_all_stored_returns_the_rows_as_json_in_an_object_store(memory_bucket: str, logs: Logs) -> None:
    from airflow.sdk import ObjectStoragePath

    summary = summary_of(["a", "b"], f"memory://{memory_bucket}/videos/summary.json")
    ti = FakeTI(
        {0: "success", 1: "success"},
        {
            ("return_value", i): stored_video(f"v{i}", f"memory://{memory_bucket}/videos/v{i}.mp4")
            for i in (0, 1)
        },
    )
    rows = run(summary, ti, {})
    assert [(r["status"], r["prompt"], r["fetch_command"]) for r in rows] == [
        (STORED, "a", None),
        (STORED, "b", None),
    ]
    written = ObjectStoragePath(f"memory://{memory_bucket}/videos/summary.json")
    assert json.loads(written.read_text()) == rows
    assert set(rows[0]) == set(COLUMNS)
    assert "map_index  status" in logs.text


def test_nothing_to_fetch_fails_only_when_asked(tmp_path: Path) -> None:
    summary = summary_of(["a"], f"{tmp_path}/summary.csv", fail_on_missing=False)
    rows = run(summary, FakeTI({0: "failed"}, {}), {})
    assert [(r["status"], r["note"]) for r in rows] == [(FAILED, "no job was submitted (task failed)")]


@pytest.mark.parametrize("destination", ["/videos/", "/videos/summary.txt", "/videos/summary"])
def test_the_summary_needs_a_csv_or_json_name(destination: str) -> None:
    with pytest.raises(VeoInputError, match=r"ending in \.csv or \.json"):
        run(summary_of(["a"], destination), FakeTI({0: "success"}, {}), {})


def test_prompts_of_failed_indexes_follow_airflow_s_expansion_order(tmp_path: Path) -> None:
    with DAG("nightly", schedule=None, start_date=START):
        videos = VeoGenerateVideoOperator.partial(task_id="generate_video", destination="/v/").expand(
            prompt=["fox", "owl", "elk"], seconds=[4, 8]
        )
        summary = VeoBatchSummaryOperator(
            task_id="summary", generate_task_id="generate_video", destination=f"{tmp_path}/s.csv"
        )
        videos >> summary
    with pytest.raises(AirflowFailException):
        run(summary, ti := FakeTI(dict.fromkeys(range(6), "failed"), {}), {})
    rows = ti.pushed["return_value"]
    lengths = {"prompt": 3, "seconds": 2}
    airflow_order = [
        videos.expand_input._expand_mapped_field("prompt", ["fox", "owl", "elk"], index, lengths)
        for index in range(6)
    ]
    assert [r["prompt"] for r in rows] == airflow_order == ["fox", "fox", "owl", "owl", "elk", "elk"]


def test_prompts_of_expand_kwargs_and_of_an_unmapped_task(tmp_path: Path) -> None:
    with DAG("nightly", schedule=None, start_date=START):
        VeoGenerateVideoOperator.partial(task_id="generate_video", destination="/v/").expand_kwargs(
            [{"prompt": "fox"}, {"prompt": "owl", "seconds": 8}]
        )
        by_kwargs = VeoBatchSummaryOperator(
            task_id="summary", generate_task_id="generate_video", destination=f"{tmp_path}/a.csv"
        )
    ti = FakeTI({0: "failed", 1: "failed"}, {})
    with pytest.raises(AirflowFailException):
        run(by_kwargs, ti, {})
    assert [r["prompt"] for r in ti.pushed["return_value"]] == ["fox", "owl"]

    with DAG("nightly", schedule=None, start_date=START):
        VeoGenerateVideoOperator(task_id="generate_video", prompt="heron", destination="/v/")
        unmapped = VeoBatchSummaryOperator(
            task_id="summary", generate_task_id="generate_video", destination=f"{tmp_path}/b.csv"
        )
    ti = FakeTI({-1: "failed"}, {})
    with pytest.raises(AirflowFailException):
        run(unmapped, ti, {})
    assert [(r["map_index"], r["prompt"]) for r in ti.pushed["return_value"]] == [(-1, "heron")]


@pytest.mark.parametrize(
    ("destination", "folder"),
    [
        ("s3://aws_nightly@bucket/videos/summary.csv", "s3://aws_nightly@bucket/videos/"),
        ("file:///data/videos/summary.json", "/data/videos/"),
        ("/data/videos/summary.csv", "/data/videos/"),
    ],
)
def test_fetch_commands_download_next_to_the_summary(destination: str, folder: str) -> None:
    from airflow_provider_veo.destinations import parse_destination

    assert parse_destination(destination).file_for("summary").folder == folder


def test_an_undeliverable_video_gets_no_fetch_command(tmp_path: Path, logs: Logs) -> None:
    from airflow_provider_veo.operators.summary import UNDELIVERABLE
    from airflow_provider_veo.operators.veo import UNDELIVERABLE_XCOM_KEY

    summary = summary_of(["a", "b"], f"{tmp_path}/summary.json")
    reason = "CometAPI says video v0 is completed but cannot deliver it (HTTP 502, request id: r-1)"
    ti = FakeTI(
        {0: "failed", 1: "failed"},
        {("video_id", 0): "v0", (UNDELIVERABLE_XCOM_KEY, 0): reason, ("video_id", 1): "v1;$(rm -rf ~)\nx"},
    )
    jobs: dict[str, VideoJob | Exception] = {
        "v0": VideoJob("v0", "completed"),
        "v1;$(rm -rf ~)\nx": VideoJob("v1;$(rm -rf ~)\nx", "completed"),
    }
    with pytest.raises(AirflowFailException):
        run(summary, ti, jobs)
    undeliverable, unstored = ti.pushed["return_value"]
    assert undeliverable["status"] == UNDELIVERABLE and undeliverable["fetch_command"] is None
    assert "cannot be fetched" in undeliverable["note"] and "r-1" in undeliverable["note"]
    assert "Map index 0 is not stored; fetch it" not in logs.text
    # A hostile id: the command is shell-quoted, and logged on one line.
    assert unstored["fetch_command"].startswith(
        "python -m airflow_provider_veo download 'v1;$(rm -rf ~)\nx' "
    )
    assert (
        "Map index 1 is not stored; fetch it with: python -m airflow_provider_veo download "
        "'v1;$(rm -rf ~)\\nx'" in logs.text
    )
