"""Image to video: a first and a last frame, and Veo fills the clip in between.

First + last frame needs ``veo3.1`` (or one of the self-developed models); ``veo3.1-fast`` takes a
first frame only. Frames may be local paths, object storage URIs or public http(s) URLs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_veo.operators.veo import VeoCreateVideoOperator, VeoDownloadVideoOperator
from airflow_provider_veo.sensors.veo import VeoTaskSensor

FRAMES = Path(__file__).parent / "frames"
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))

with DAG(
    dag_id="veo_image_to_video",
    description="Generate a Veo 3.1 video between a first and a last frame",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veo", "example"],
):
    create_video = VeoCreateVideoOperator(
        task_id="create_video",
        prompt="The camera glides from dawn to dusk over the same valley.",
        model="veo3.1",
        seconds=8,
        size="1280x720",
        input_reference=[str(FRAMES / "first_frame.png"), str(FRAMES / "last_frame.png")],
    )
    wait_for_video = VeoTaskSensor(
        task_id="wait_for_video",
        video_id=create_video.output,
        poke_interval=POLL_INTERVAL,
        timeout=30 * 60,
        deferrable=True,
    )
    download_video = VeoDownloadVideoOperator(
        task_id="download_video",
        video_id=create_video.output,
        destination=os.environ.get("VEO_DESTINATION", "/tmp/veo-videos/"),
        retries=2,
    )
    wait_for_video >> download_video
