"""What a stored video tells Airflow: OpenLineage facets and the manifest, without Airflow running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_veo import api, publishing
from airflow_provider_veo.api import StoredVideo, VideoJob
from airflow_provider_veo.destinations import parse_destination

from .conftest import stored_video


def _stored(tmp_path: Path, **fields: Any) -> StoredVideo:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"mp4")
    return stored_video(
        **{"video_id": "task_1", "uri": str(path), "asset_uri": path.as_uri(), "prompt": "a fox", **fields}
    )


def test_openlineage_names_the_video_and_its_images(tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")
    frame = tmp_path / "first.png"
    references = [str(frame), "https://images.test/last.png", "s3://bucket/frames/mid.png"]
    stored = _stored(tmp_path, asset_uri="s3://media/veo/clip.mp4", bytes=2048, input_reference=references)
    lineage = publishing.openlineage_facets(stored)
    [output] = lineage.outputs
    assert (output.namespace, output.name) == ("s3://media", "veo/clip.mp4")
    assert output.outputFacets["outputStatistics"].size == 2048
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("file", str(frame.resolve())),
        ("https://images.test", "last.png"),
        ("s3://bucket", "frames/mid.png"),
    ]
    assert lineage.run_facets["externalQuery"].externalQueryId == "task_1"
    assert publishing.openlineage_facets(None).outputs == []


def test_the_manifest_says_what_made_the_file(tmp_path: Path) -> None:
    stored = _stored(tmp_path, input_reference=["/frames/a.png"])
    request = api.build_request(
        prompt="a fox " * 100, model="veo3.1", seconds=8, input_reference="/frames/a.png"
    )
    job = VideoJob(video_id="task_1", status="completed", created_at=100, completed_at=160)
    target = parse_destination(f"{tmp_path}/clip.mp4")
    written = publishing.write_manifest(target, stored, job, request, ["ef" * 32])
    manifest = json.loads(Path(written).read_text())
    assert Path(written) == (tmp_path / "clip.json").resolve()
    assert manifest["prompt"] == request.prompt  # whole, unlike the result's excerpt
    assert manifest["input_reference"] == [{"location": "/frames/a.png", "sha256": "ef" * 32}]
    assert (manifest["created_at"], manifest["completed_at"]) == (100, 160)
    assert (manifest["sha256"], manifest["bytes"], manifest["width"]) == ("ab" * 32, 3, 1280)
