"""The batch summary of a nightly mapped run, for real with ``dag.test()``: one video stored, one job
failed, one paid for but never stored; the rows (XCom), the CSV and JSON files, and the task log."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from airflow_provider_veo.operators.summary import COLUMNS
from airflow_provider_veo.testing import VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from .conftest import dag_named

DAG_FILE = "veo_summary_dags.py"


def test_summary_of_a_run_with_a_failed_and_an_unstored_video(
    emulator: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    dag = dag_named("veo_summary_mapped", DAG_FILE)
    prompts = dag.task_dict["generate_video"].expand_input.value["prompt"]
    result = run_dag(dag, run_conf={"destination": f"{tmp_path}/"})
    log = capfd.readouterr().out

    assert [t.state for t in result.mapped("generate_video")] == ["success", "failed", "failed"]
    ids = {job.prompt: job.id for job in emulator.jobs.values()}
    assert len(emulator.posts) == 3 and set(ids) == set(prompts)
    (video,) = [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
    stored_id, failed_id, unstored_id = (ids[prompt] for prompt in prompts)
    fetch = f"python -m airflow_provider_veo download {shlex.quote(unstored_id)} {tmp_path}/"

    expected = [
        {
            "map_index": 0,
            "status": "stored",
            "prompt": prompts[0],
            "video_id": stored_id,
            "uri": str(video),
            "bytes": emulator.expected_bytes(stored_id),
            "task_state": "success",
            "note": None,
            "fetch_command": None,
        },
        {
            "map_index": 1,
            "status": "failed",
            "prompt": prompts[1],
            "video_id": failed_id,
            "uri": None,
            "bytes": None,
            "task_state": "failed",
            "note": f"Video {failed_id} ended with status 'failed', error code 'content_policy_violation': "
            "The prompt was blocked by the safety filter",
            "fetch_command": None,
        },
        {
            "map_index": 2,
            "status": "paid but not stored",
            "prompt": prompts[2],
            "video_id": unstored_id,
            "uri": None,
            "bytes": None,
            "task_state": "failed",
            "note": "the job completed; its download failed",
            "fetch_command": fetch,
        },
    ]
    for suffix in ("csv", "json"):
        summary = result.task(f"summary_{suffix}")
        # Two of three videos are missing: the summary writes and pushes its rows, then fails, so the
        # run (whose state follows its leaf tasks) is not reported as a success; no retry.
        assert (summary.state, summary.try_number) == ("failed", 1)
        assert summary.xcom["return_value"] == expected
    assert result.state == "failed"

    # The files, next to the video, and nothing half-written beside them.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([video.name, "summary.csv", "summary.json"])
    assert json.loads((tmp_path / "summary.json").read_text()) == expected
    with (tmp_path / "summary.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        assert list(reader) == [
            {name: "" if row[name] is None else str(row[name]) for name in COLUMNS} for row in expected
        ]

    # The task log: a count, the table, and the command for the paid job.
    assert f"written to {tmp_path}/summary.csv" in log
    assert "3 videos (1 stored, 1 failed, 1 paid but not stored)" in log
    table = [line for line in log.splitlines() if "map_index  status" in line]
    assert table and "video_id" in table[0] and "prompt" in table[0]
    assert any(stored_id in line and str(video) in line and " stored " in line for line in log.splitlines())
    assert any(failed_id in line and " failed " in line for line in log.splitlines())
    assert f"Map index 2 is not stored; fetch it with: {fetch}" in log
    assert "2 of 3 videos of 'generate_video' were not stored" in log
