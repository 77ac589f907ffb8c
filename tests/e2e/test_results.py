"""Real ``dag.test()`` runs: what a stored video tells Airflow, and what a retry may reuse.

Assets and alias events, the manifest, the prompt in the result and the log, the grid's label of
mapped tasks, the ``usage`` XCom, file modes, the re-render switch, ``max_submissions``, and a
deferred task ended by its ``execution_timeout``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import run_dag

from .conftest import dag_named
from .test_resume import airflow_has_task_state_store

DAGS = "veo_results_dags.py"
needs_task_state_store = pytest.mark.skipif(
    not airflow_has_task_state_store(), reason="durable resume needs Airflow 3.3+"
)


def run(dag_id: str, destination: Path) -> Any:
    return run_dag(dag_named(dag_id, DAGS), run_conf={"destination": f"{destination}/"})


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for a run, and put the original back after."""
    original = os.umask(0o022)
    os.umask(original)

    def use(mask: int) -> None:
        os.umask(mask)

    yield use
    os.umask(original)


# --------------------------------------------------------------------------------------------
# What a retry may reuse
# --------------------------------------------------------------------------------------------


@needs_task_state_store
def test_a_retry_whose_prompt_changed_pays_for_the_new_request(
    emulator: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    emulator.queue_scenario(Scenario(expired_url_fetches=3))  # try 1's download fails three times
    result = run("veo_results_prompt_changes_between_tries", tmp_path)
    task = result.task("generate_video")
    assert (result.state, task.try_number) == ("success", 2)
    assert [dict(p.form)["prompt"] for p in emulator.posts] == ["a fox, take 1", "a fox, take 2"]
    video = task.xcom["return_value"]
    second = [job for job in emulator.jobs.values() if job.prompt == "a fox, take 2"]
    assert [video["video_id"]] == [job.id for job in second]
    assert video["prompt"] == "a fox, take 2"
    assert "request changed" in capfd.readouterr().out
    assert task.xcom["usage"]["create_requests"] == 2 and task.xcom["usage"]["try_number"] == 2
    assert video["usage"] == task.xcom["usage"]  # the result says the same


@needs_task_state_store
@pytest.mark.parametrize(("dag", "posts"), [("veo_results_reuse", 1), ("veo_results_rerender", 2)])
def test_reuse_previous_job_decides_whether_a_retry_renders_again(
    emulator: VeoEmulator, tmp_path: Path, dag: str, posts: int
) -> None:
    emulator.queue_scenario(Scenario(expired_url_fetches=3))
    result = run(dag, tmp_path)
    task = result.task("generate_video")
    assert (result.state, task.try_number) == ("success", 2)
    assert len(emulator.posts) == posts
    assert task.xcom["usage"]["create_requests"] == posts
    assert [p.name for p in tmp_path.iterdir()] == [Path(task.xcom["return_value"]["uri"]).name]


@needs_task_state_store
def test_max_submissions_stops_a_second_paid_job(emulator: VeoEmulator, tmp_path: Path) -> None:
    emulator.queue_scenario(Scenario(expired_url_fetches=3))
    result = run("veo_results_max_submissions", tmp_path)
    task = result.task("generate_video")
    assert (task.state, task.try_number) == ("failed", 2)
    assert len(emulator.posts) == 1
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# What a stored video tells Airflow
# --------------------------------------------------------------------------------------------


def test_published_videos_carry_their_request_and_raise_asset_events(
    emulator: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    result = run("veo_results_published", tmp_path)
    assert result.state == "success"
    videos = [record.xcom["return_value"] for record in result.mapped("generate_video")]
    # Deferred: the usage pushed before deferring reaches the result too.
    assert [v["usage"] for v in videos] == [r.xcom["usage"] for r in result.mapped("generate_video")]
    prompts = ["A lighthouse at night, waves crashing on the rocks below it", "Steam over a coffee cup"]
    assert [v["prompt"] for v in videos] == prompts
    log = capfd.readouterr().out
    assert all(f"prompt {p!r}" in log for p in prompts), "the Submitted video line names the prompt"
    assert "were asked for" not in log and "was asked for" not in log, "each clip is what was asked"
    for video in videos:
        path = Path(video["uri"])
        assert video["asset_uri"] == path.as_uri()
        manifest = json.loads(path.with_suffix(".json").read_text())
        assert manifest["video_id"] == video["video_id"] and manifest["sha256"] == video["sha256"]
        assert manifest["prompt"] in prompts and manifest["bytes"] == path.stat().st_size
        assert (manifest["duration_seconds"], manifest["width"], manifest["height"]) == (4.0, 1280, 720)
    with create_session() as session:
        labels = [
            ti.rendered_map_index
            for ti in session.query(TaskInstance).filter_by(dag_id=result.dag_id, run_id=result.run_id)
        ]
        events = {
            uri: [
                e.extra
                for e in session.query(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == uri)
            ]
            for uri in ["veo://e2e/videos", *(v["asset_uri"] for v in videos)]
        }
    # The grid's label: the prompt, cut to 48 characters.
    assert sorted(labels) == sorted([prompts[0][:47] + "…", prompts[1]])
    # One event per mapped task on the Asset outlet, each describing its video.
    assert sorted(e["video_id"] for e in events["veo://e2e/videos"]) == sorted(v["video_id"] for v in videos)
    # The alias added one Asset per stored video, named by where it is, with the video in its event.
    for video in videos:
        [extra] = events[video["asset_uri"]]
        assert extra["sha256"] == video["sha256"] and extra["prompt"] == video["prompt"]
        assert extra["width"] == 1280


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_published_files_are_as_readable_as_the_umask_says(
    emulator: VeoEmulator, tmp_path: Path, umask: Any, mask: int, mode: int
) -> None:
    umask(mask)
    result = run("veo_results_published", tmp_path)
    assert result.state == "success"
    published = sorted(tmp_path.iterdir())
    assert len(published) == 4  # two videos and their manifests
    assert {stat.S_IMODE(p.stat().st_mode) for p in published} == {mode}


def test_a_deferred_task_ends_with_its_execution_timeout(emulator: VeoEmulator, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run("veo_results_execution_timeout", tmp_path)
    task = result.task("generate_video")
    assert task.state == "failed"
    assert time.monotonic() - started < 60, "ended by execution_timeout (3 s), not by timeout (1 h)"
    assert len(emulator.posts) == 1


# --------------------------------------------------------------------------------------------
# OpenLineage, through the OpenLineage provider's own file transport (installed on the newest Airflow)
# --------------------------------------------------------------------------------------------

OPENLINEAGE_RUN = """
import json, sys
from pathlib import Path
from airflow_provider_veo.testing.runner import load_dag, run_dag
result = run_dag(load_dag(Path(sys.argv[1]), "veo_results_reuse"), {"destination": sys.argv[2]})
summary = {"state": result.state, "video": result.task("generate_video").xcom["return_value"]}
Path(sys.argv[3]).write_text(json.dumps(summary))
"""


def test_openlineage_sees_the_stored_video(emulator: VeoEmulator, tmp_path: Path) -> None:
    """A real dag.test() in its own process (the OpenLineage listener reads its settings once)."""
    import subprocess
    import sys

    pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")
    events = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "veo-e2e",
    }
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / DAGS
    out = tmp_path / "out"
    summary_file = tmp_path / "summary.json"
    subprocess.run(
        [sys.executable, "-c", OPENLINEAGE_RUN, str(dag_file), f"{out}/", str(summary_file)],
        env=env,
        capture_output=True,
        timeout=300,
        check=True,
    )
    summary = json.loads(summary_file.read_text())
    assert summary["state"] == "success"
    video = summary["video"]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    [complete] = [
        e for e in lines if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith("generate_video")
    ]
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", video["uri"])
    assert output["outputFacets"]["outputStatistics"]["size"] == video["bytes"]
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == video["video_id"]
    assert emulator.api_key not in events.read_text()


def test_the_example_pair_queues_the_consumer_for_every_stored_video(
    emulator: VeoEmulator, tmp_path: Path
) -> None:
    """``veo_publish_video`` is scheduled on the alias the renderer's videos land in."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    from .conftest import EXAMPLE_DAGS

    os.environ["VEO_DESTINATION"] = f"{tmp_path}/"
    try:
        result = run_dag(dag_named("veo_render_for_publishing", "example_veo_assets.py"))
    finally:
        del os.environ["VEO_DESTINATION"]
    assert (EXAMPLE_DAGS / "example_veo_assets.py").exists()
    assert result.state == "success"
    stored = {record.xcom["return_value"]["asset_uri"] for record in result.mapped("generate_video")}
    with create_session() as session:
        queued = {
            uri
            for (uri,) in session.query(AssetModel.uri)
            .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .filter(AssetDagRunQueue.target_dag_id == "veo_publish_video")
        }
    assert len(stored) == 2 and queued == stored
