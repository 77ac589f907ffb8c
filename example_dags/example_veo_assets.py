"""A pair of DAGs joined by assets: one renders videos, the other runs once per stored video.

``veo_render_for_publishing`` generates one video per prompt. Its ``outlets`` hold an
``AssetAlias``: each stored video adds an ``Asset`` named by where the file is
(``file:///...``, ``s3://bucket/key``), with the video in the event's ``extra`` (video id, sha256,
bytes, model, seconds, size, duration, width, height, prompt). ``veo_publish_video`` is scheduled
on that alias. One of its runs may carry several videos (all those stored while it waited to be
scheduled), and each event appears under both the alias and its asset in
``triggering_asset_events``: ``videos_from_events`` lists each video once.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, AssetAlias, task

from airflow_provider_veo import videos_from_events
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

VIDEOS = AssetAlias("veo-videos")
DESTINATION = os.environ.get("VEO_DESTINATION", "/tmp/veo-videos/")

with DAG(
    dag_id="veo_render_for_publishing",
    description="Render videos; each stored video is an asset event for veo_publish_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veo", "example", "assets"],
):
    VeoGenerateVideoOperator.partial(
        task_id="generate_video",
        destination=DESTINATION,
        poll_interval=float(os.environ.get("VEO_POLL_INTERVAL", "15")),
        deferrable=True,
        outlets=[VIDEOS],
    ).expand(prompt=["A paper kite above a field.", "Rain on a tin roof at dusk."])

with DAG(
    dag_id="veo_publish_video",
    description="Runs on the videos stored by veo_render_for_publishing, each video once",
    schedule=[VIDEOS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veo", "example", "assets"],
):

    @task
    def publish(*, triggering_asset_events: dict) -> list[dict]:  # type: ignore[type-arg]
        """Where a real pipeline would transcode or upload: here it reads what each video's event says."""
        videos = videos_from_events(triggering_asset_events)
        for video in videos:
            print(f"Publishing {video['uri']} ({video['bytes']} bytes, sha256 {video['sha256']})")
        return videos

    publish()
