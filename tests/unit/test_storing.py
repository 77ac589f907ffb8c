"""What the storing operators do with their destination, and what a stored video tells downstream
DAGs: the pre-payment check, the errors after paying, leftovers, asset events read once."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

import airflow_provider_veo
from airflow_provider_veo import publishing
from airflow_provider_veo.api import VeoInputError, VideoJob
from airflow_provider_veo.compat import AirflowFailException
from airflow_provider_veo.destinations import VeoStorageError
from airflow_provider_veo.hooks.veo import VeoHook
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

from .conftest import VIDEO_ID, FakeStateStore, FakeTI, job_json, stored_video


def _generate(destination: str, hook: Any, **kwargs: Any) -> VeoGenerateVideoOperator:
    operator = VeoGenerateVideoOperator(
        task_id="generate", prompt="a wren on a fence", destination=destination, deferrable=False, **kwargs
    )
    operator.hook = hook  # type: ignore[misc]
    return operator


def _hook(job: VideoJob) -> Any:
    hook = mock.create_autospec(VeoHook, instance=True)
    hook.create_requests_sent = 0
    hook.submit.return_value = job
    hook.get_video.return_value = job
    hook.load_references.return_value = []
    return hook


# --------------------------------------------------------------------------------------------
# Before paying
# --------------------------------------------------------------------------------------------


def test_an_unwritable_destination_is_refused_before_the_create(ti: FakeTI) -> None:
    hook = _hook(VideoJob.from_json(job_json(status="completed")))
    with pytest.raises(AirflowFailException, match="no filesystem for nosuchfs://"):
        _generate("nosuchfs://media/veo/", hook).execute({"ti": ti})
    hook.submit.assert_not_called()
    assert ti.pushed == []


def test_a_refused_destination_on_a_retry_names_the_job_an_earlier_try_paid_for(ti: FakeTI) -> None:
    hook = _hook(VideoJob.from_json(job_json(status="completed")))
    store = FakeStateStore(veo_video_id={"video_id": "task_earlier", "submissions": 1})
    with pytest.raises(AirflowFailException) as info:
        _generate("nosuchfs://media/veo/", hook).execute({"ti": ti, "task_state_store": store})
    assert "An earlier try of this task submitted video task_earlier" in str(info.value)
    assert "python -m airflow_provider_veo download task_earlier nosuchfs://media/veo/" in str(info.value)
    hook.submit.assert_not_called()


# --------------------------------------------------------------------------------------------
# After paying
# --------------------------------------------------------------------------------------------


def test_a_store_failing_after_paying_is_retryable_and_says_how_to_fetch(tmp_path: Path, ti: FakeTI) -> None:
    hook = _hook(VideoJob.from_json(job_json(status="completed", video_url="https://cdn.test/v.mp4")))
    hook.download_video.side_effect = VeoStorageError(
        "Could not upload the video: endpoint down", retryable=True
    )
    with pytest.raises(VeoStorageError) as info:  # not AirflowFailException: Airflow retries it
        _generate(f"{tmp_path}/", hook).execute({"ti": ti})
    message = str(info.value)
    assert "endpoint down" in message and f"Video {VIDEO_ID} is paid for" in message
    assert f"VeoDownloadVideoOperator(video_id={VIDEO_ID!r}" in message


def test_a_timeout_while_storing_stays_a_timeout_and_says_how_to_fetch(tmp_path: Path, ti: FakeTI) -> None:
    from airflow_provider_veo.compat import AirflowTaskTimeout as timeout_error  # Airflow's execution_timeout

    hook = _hook(VideoJob.from_json(job_json(status="completed", video_url="https://cdn.test/v.mp4")))
    hook.download_video.side_effect = timeout_error("Timeout, PID: 42")
    with pytest.raises(timeout_error) as info:  # Airflow handles its own timeout as one
        _generate(f"{tmp_path}/", hook).execute({"ti": ti})
    message = str(info.value)
    assert message.startswith("Timeout, PID: 42. ") and f"Video {VIDEO_ID} is paid for" in message
    assert f"python -m airflow_provider_veo download {VIDEO_ID}" in message


@pytest.mark.parametrize("failure", ["store", "destination"])
def test_the_fetch_command_names_the_tasks_own_connection(tmp_path: Path, ti: FakeTI, failure: str) -> None:
    """A job created through another connection is only known to that account: the pasted command must
    read it through the same connection, after a failed upload and when a retry finds a bad destination."""
    hook = _hook(VideoJob.from_json(job_json(status="completed", video_url="https://cdn.test/v.mp4")))
    hook.download_video.side_effect = VeoStorageError("Could not upload the video", retryable=True)
    context: dict[str, Any] = {"ti": ti}
    destination = f"{tmp_path}/"
    if failure == "destination":
        context["task_state_store"] = FakeStateStore(veo_video_id={"video_id": VIDEO_ID, "submissions": 1})
        destination = "nosuchfs://media/veo/"
    with pytest.raises((VeoStorageError, AirflowFailException)) as info:
        _generate(destination, hook, veo_conn_id="veo_nightly").execute(context)
    assert f"python -m airflow_provider_veo download {VIDEO_ID} {destination} --conn-id veo_nightly" in str(
        info.value
    )


def test_the_next_try_removes_what_a_killed_try_left(tmp_path: Path, ti: FakeTI, logs: Any) -> None:
    job = VideoJob.from_json(job_json(status="completed", video_url="https://cdn.test/v.mp4"))
    hook = _hook(job)
    hook.download_video.return_value = stored_video()
    name = airflow_provider_veo.api.video_filename(VIDEO_ID)
    stale, mine = tmp_path / f".{name}.0123456789ab.part", tmp_path / f".{name}.ba9876543210.part"
    stale.write_bytes(b"a killed try's bytes")
    mine.write_bytes(b"written during this try")
    started = time.time() - 10
    os.utime(stale, (started - 600, started - 600))
    ti.start_date = datetime.fromtimestamp(started, tz=timezone.utc)  # type: ignore[attr-defined]
    _generate(f"{tmp_path}/", hook).execute({"ti": ti})
    assert not stale.exists() and mine.exists()
    assert f"Removed 1 temporary file(s) of {tmp_path}/{name} left by an earlier try: {stale}" in logs.text


# --------------------------------------------------------------------------------------------
# Asset events, written and read
# --------------------------------------------------------------------------------------------


class FakeOutletEvents:
    """``context["outlet_events"]``: an accessor per outlet, made on first use. Keyed by the outlet's
    kind and name, as Airflow's own accessors are: Airflow 3.1's ``Asset`` cannot be hashed."""

    def __init__(self) -> None:
        self._accessors: dict[tuple[str, str], Any] = {}

    def __getitem__(self, outlet: Any) -> Any:
        key = (type(outlet).__name__, getattr(outlet, "uri", None) or outlet.name)
        if key not in self._accessors:
            accessor = SimpleNamespace(extra={}, added=[])
            accessor.add = lambda asset, extra: accessor.added.append((asset, extra))
            self._accessors[key] = accessor
        return self._accessors[key]


def test_asset_events_describe_the_video_on_each_outlet() -> None:
    from airflow.sdk import Asset, AssetAlias

    asset, alias = Asset("veo://videos"), AssetAlias("veo-videos")
    events = FakeOutletEvents()
    stored = stored_video()
    publishing.emit_asset_events({"outlet_events": events}, [asset, alias], stored)  # type: ignore[arg-type]
    assert events[asset].extra == publishing.asset_extra(stored)
    assert events[asset].extra["asset_uri"] == "s3://media/veo/clip.mp4"
    [(added, extra)] = events[alias].added
    assert added == Asset("s3://media/veo/clip.mp4") and extra == publishing.asset_extra(stored)
    assert events[asset].added == [] and events[alias].extra == {}


def test_no_outlets_touch_no_events() -> None:
    publishing.emit_asset_events({}, [], stored_video())  # type: ignore[arg-type]  # no outlet_events needed


def test_each_video_is_read_once_from_a_downstream_runs_events() -> None:
    def event(video_id: str | None, asset_uri: str) -> Any:
        return SimpleNamespace(extra={"video_id": video_id, "asset_uri": asset_uri})

    first, second = event("v1", "s3://m/v1.mp4"), event("v2", "s3://m/v2.mp4")
    no_id = event(None, "s3://m/other.mp4")
    triggering = {
        "alias": [first, second, no_id],
        "asset s3://m/v1.mp4": [first],
        "asset s3://m/v2.mp4": [second],
        "asset s3://m/other.mp4": [no_id],
        "an event without extra": [SimpleNamespace(extra=None)],
    }
    videos = airflow_provider_veo.videos_from_events(triggering)
    assert [(v["video_id"], v["asset_uri"]) for v in videos] == [
        ("v1", "s3://m/v1.mp4"),
        ("v2", "s3://m/v2.mp4"),
        (None, "s3://m/other.mp4"),
    ]
    assert airflow_provider_veo.videos_from_events({}) == []


def test_lineage_names_references_without_their_connection_ids() -> None:
    assert publishing._as_uri("s3://aws_media@frames/first.png") == "s3://frames/first.png"
    assert publishing._as_uri("https://images.test/a.png") == "https://images.test/a.png"
    assert publishing._as_uri("abfs://frames@acct01.dfs.core.windows.net/a.png") == (
        "abfs://frames@acct01.dfs.core.windows.net/a.png"
    )


def test_a_reference_on_a_store_without_a_filesystem_names_the_field() -> None:
    hook = VeoHook()
    request = airflow_provider_veo.api.build_request(
        prompt="p", input_reference="nosuchfs://frames/first.png"
    )
    with pytest.raises(VeoInputError) as info:
        hook.load_references(request)
    assert info.value.field == "input_reference"
    assert "no filesystem for nosuchfs://" in str(info.value)


def test_the_link_is_pushed_before_the_download(ti: FakeTI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download operator pushes the canonical URI and the link's URL before it reads the job."""
    from airflow.sdk.io import attach, store
    from fsspec.implementations.memory import MemoryFileSystem

    from airflow_provider_veo.operators.veo import VeoDownloadVideoOperator

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    minio = MemoryFileSystem(skip_instance_cache=True)
    minio.endpoint_url = "http://127.0.0.1:9000"  # as s3fs holds the connection's endpoint_url
    attach(protocol="s3", conn_id="minio", fs=minio)
    hook = _hook(VideoJob.from_json(job_json(status="queued")))
    operator = VeoDownloadVideoOperator(task_id="d", video_id=VIDEO_ID, destination="s3://minio@media/veo/")
    operator.hook = hook  # type: ignore[misc]
    with pytest.raises(Exception, match="is not finished"):
        operator.execute({"ti": ti})
    name = airflow_provider_veo.api.video_filename(VIDEO_ID)
    assert dict(ti.pushed) == {
        "stored_video_uri": f"s3://media/veo/{name}",
        "stored_video_url": f"http://127.0.0.1:9000/media/veo/{name}",
    }
