"""Real DAG runs with ``dag.test()`` against the emulator: deferred and poke mode, the happy paths and
the ways a job or a download goes wrong. Each asserts on what the emulator recorded, on the files
written and on the task states in the metadata DB."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pendulum
import pytest

from airflow_provider_veo.testing import Scenario, VeoEmulator
from airflow_provider_veo.testing.runner import RunResult, run_dag

from .conftest import EXAMPLE_DAGS, dag_named

START = pendulum.datetime(2026, 1, 1, tz="UTC")
MODES = ["deferrable", "poke"]


def run_three_tasks(mode: str, destination: Path, *, shape: str = "t2v", **conf: str) -> RunResult:
    """Create, sensor, download (``veo_e2e_dags.py``), with the sensor in ``mode``."""
    return run_dag(dag_named(f"veo_e2e_{shape}_{mode}"), run_conf={"destination": f"{destination}/", **conf})


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_video_written(result: RunResult, emulator: VeoEmulator, task_id: str, map_index: int = -1) -> dict:
    video = result.task(task_id, map_index).xcom["return_value"]
    assert Path(video["uri"]).is_file()
    assert video["sha256"] == sha256_file(video["uri"]) == emulator.expected_sha256(video["video_id"])
    assert video["bytes"] == Path(video["uri"]).stat().st_size
    assert video["content_type"] == "video/mp4"
    return video


def test_example_text_to_video(
    emulator: VeoEmulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The demo's DAG: what ``scripts/demo.sh`` runs, with a clip that is what was asked and a log
    without a warning that it is not."""
    result = run_dag(
        dag_named("veo_text_to_video", "example_veo_text_to_video.py"),
        run_conf={"prompt": "A kite over a field", "seconds": "6", "destination": f"{tmp_path}/"},
    )
    assert result.state == "success"
    assert {t.task_id: t.state for t in result.tasks} == dict.fromkeys(
        ("create_video", "wait_for_video", "download_video"), "success"
    )
    assert len(emulator.posts) == 1
    assert emulator.posts[0].form == [
        ("model", "veo3.1-fast"),
        ("prompt", "A kite over a field"),
        ("seconds", "6"),
        ("size", "1280x720"),
    ]
    assert emulator.posts[0].headers["content-type"].startswith("multipart/form-data")
    video = assert_video_written(result, emulator, "download_video")
    assert video["seconds"] == "6" and video["model"] == "veo3.1-fast"
    assert (video["duration_seconds"], video["width"], video["height"]) == (6.0, 1280, 720)
    log = capfd.readouterr().out
    assert f"Wrote {video['uri']}" in log  # the download's log is the one read here
    assert "were asked for" not in log and "was asked for" not in log
    assert result.task("create_video").xcom["video_id"] == video["video_id"]
    cdn = [r for r in emulator.requests if r.listener == "cdn"]
    assert cdn and all("authorization" not in r.headers for r in cdn)
    assert emulator.cdn_authorization_attempts == 0


@pytest.mark.parametrize("mode", MODES)
def test_text_to_video_both_modes(emulator: VeoEmulator, tmp_path: Path, mode: str) -> None:
    result = run_three_tasks(mode, tmp_path, prompt="a fox")
    assert result.state == "success"
    assert len(emulator.posts) == 1
    # `seconds` is always sent: the gateway would otherwise render and bill Veo's own default of 8.
    assert dict(emulator.posts[0].form) == {
        "model": "veo3.1",
        "prompt": "a fox",
        "seconds": "4",
        "size": "720x1280",
    }
    assert result.task("wait_for_video").xcom["return_value"]["status"] == "completed"
    assert_video_written(result, emulator, "download_video")


def test_example_image_to_video_first_and_last_frame(
    emulator: VeoEmulator, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("VEO_DESTINATION", f"{tmp_path}/")
    result = run_dag(dag_named("veo_image_to_video", "example_veo_image_to_video.py"))
    assert result.state == "success"
    (post,) = emulator.posts
    frames = [EXAMPLE_DAGS / "frames" / "first_frame.png", EXAMPLE_DAGS / "frames" / "last_frame.png"]
    assert [(f.name, f.filename, f.content_type, f.sha256) for f in post.files] == [
        ("input_reference", frame.name, "image/png", sha256_file(frame)) for frame in frames
    ]
    assert dict(post.form)["model"] == "veo3.1" and dict(post.form)["seconds"] == "8"
    assert_video_written(result, emulator, "download_video")


def test_example_generate_mapped_over_prompts(emulator: VeoEmulator, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VEO_DESTINATION", f"{tmp_path}/")
    dag = dag_named("veo_generate_mapped", "example_veo_generate_mapped.py")
    result = run_dag(dag)
    assert result.state == "success"
    mapped = result.mapped("generate_video")
    assert [t.state for t in mapped] == ["success"] * 3
    assert sorted(dict(p.form)["prompt"] for p in emulator.posts) == sorted(
        dag.task_dict["generate_video"].expand_input.value["prompt"]
    )
    uris = {assert_video_written(result, emulator, "generate_video", t.map_index)["uri"] for t in mapped}
    assert len(uris) == 3 and leftovers(tmp_path) == sorted([*(Path(u).name for u in uris), "summary.csv"])
    assert [r["status"] for r in result.task("summarize").xcom["return_value"]] == ["stored"] * 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("outcome", ["failed", "error"])
def test_failed_job_fails_without_retry(
    emulator: VeoEmulator, tmp_path: Path, mode: str, outcome: str, capfd: pytest.CaptureFixture[str]
) -> None:
    emulator.scenario = Scenario(
        outcome=outcome, error_code="content_policy_violation", error_message="Blocked"
    )
    result = run_three_tasks(mode, tmp_path)
    assert result.state == "failed"
    sensor = result.task("wait_for_video")
    assert sensor.state == "failed" and sensor.try_number == 1  # retries=2, but a failed job is final
    assert result.task("download_video").state == "upstream_failed"
    assert len(emulator.posts) == 1
    task_log = capfd.readouterr().out  # dag.test() prints the task logs
    assert f"ended with status '{outcome}', error code 'content_policy_violation': Blocked" in task_log
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", MODES)
def test_sensor_timeout(emulator: VeoEmulator, tmp_path: Path, mode: str) -> None:
    emulator.scenario = Scenario(polls_until_done=10_000)
    result = run_three_tasks(mode, tmp_path, shape="timeout")
    assert result.task("wait_for_video").state == "failed"
    assert result.task("wait_for_video").try_number == 1  # a sensor timeout is not retried
    assert result.state == "failed"
    assert len(emulator.posts) == 1


def test_missing_video_url_downloads_content_with_key(emulator: VeoEmulator, tmp_path: Path) -> None:
    emulator.scenario = Scenario(missing_video_url=True)
    result = run_three_tasks("deferrable", tmp_path)
    assert result.state == "success"
    video = assert_video_written(result, emulator, "download_video")
    content = [r for r in emulator.requests if r.path.endswith("/content")]
    assert content and content[-1].headers.get("authorization") == f"Bearer {emulator.api_key}"
    assert video["video_id"] in content[-1].path.replace("%3A", ":")
    assert not [r for r in emulator.requests if r.listener == "cdn"]


def test_truncated_download_leaves_nothing(emulator: VeoEmulator, tmp_path: Path) -> None:
    emulator.scenario = Scenario(truncate_download=True)
    result = run_three_tasks("deferrable", tmp_path)
    assert result.task("download_video").state == "failed"
    assert result.task("wait_for_video").state == "success"
    assert leftovers(tmp_path) == []
    assert len(emulator.posts) == 1


def test_wrong_key_fails_at_once(emulator: VeoEmulator, tmp_path: Path, monkeypatch) -> None:
    wrong = {"conn_type": "veo", "host": emulator.url, "password": "sk-wrong-key"}
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps(wrong))
    result = run_three_tasks("deferrable", tmp_path)
    create = result.task("create_video")
    assert create.state == "failed" and create.try_number == 1  # retries=2, but a refused key is final
    assert emulator.jobs == {}
    assert [r.status for r in emulator.posts] == [401]
