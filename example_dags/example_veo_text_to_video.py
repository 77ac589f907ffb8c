"""Text to video in three tasks: submit the prompt, wait in the triggerer, store the MP4.

Trigger it with a prompt of your own, e.g. ``airflow dags trigger veo_text_to_video --conf
'{"prompt": "A paper kite floats above a field."}'``. The destination may be any object storage
URI (``s3://aws_default@my-bucket/videos/``); one ending in ``/`` gets ``<video id>.mp4``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.veo import VeoCreateVideoOperator, VeoDownloadVideoOperator
from airflow_provider_veo.sensors.veo import VeoTaskSensor

#: Seconds between status reads; the offline demo shortens it, CometAPI jobs take 1 to 6 minutes.
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))

with DAG(
    dag_id="veo_text_to_video",
    description="Generate a Veo 3.1 video from a prompt and store the MP4",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veo", "example"],
    params={
        "prompt": Param("A paper kite floats above a field at golden hour.", type="string", minLength=1),
        "model": Param("veo3.1-fast", type="string"),
        "seconds": Param("4", enum=["4", "6", "8"]),
        "size": Param("1280x720", type="string"),
        "destination": Param(os.environ.get("VEO_DESTINATION", "/tmp/veo-videos/"), type="string"),
    },
):
    create_video = VeoCreateVideoOperator(
        task_id="create_video",
        prompt="{{ params.prompt }}",
        model="{{ params.model }}",
        seconds="{{ params.seconds }}",
        size="{{ params.size }}",
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
        destination="{{ params.destination }}",
        retries=2,
    )
    wait_for_video >> download_video
