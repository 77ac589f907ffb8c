"""DAGs for the end-to-end tests, one per shape and waiting mode.

``dag.test()`` (Airflow 3.3) runs only DAGs found in the DAGs folder, so the tests' DAGs live in a
file there rather than in the test functions. Prompts and destinations come from the run's conf:
a test steers the emulator through the prompt marker or its scenario.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.veo import (
    VeoCreateVideoOperator,
    VeoDownloadVideoOperator,
    VeoGenerateVideoOperator,
)
from airflow_provider_veo.sensors.veo import VeoTaskSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {
    "prompt": Param("a fox in the snow", type="string"),
    "destination": Param("/tmp/veo-e2e/", type="string"),
    "model": Param("veo3.1", type="string"),
    "size": Param("720x1280", type="string"),
}

for mode, deferrable in (("deferrable", True), ("poke", False)):
    for name, timeout in (("t2v", 60), ("timeout", 1)):
        with DAG(
            dag_id=f"veo_e2e_{name}_{mode}", schedule=None, start_date=START, catchup=False, params=PARAMS
        ):
            video = VeoCreateVideoOperator(
                task_id="create_video",
                prompt="{{ params.prompt }}",
                model="{{ params.model }}",
                size="{{ params.size }}",
                retries=2,
            )
            wait = VeoTaskSensor(
                task_id="wait_for_video",
                video_id=video.output,
                poke_interval=0.2,
                timeout=timeout,
                deferrable=deferrable,
                retries=2,
            )
            download = VeoDownloadVideoOperator(
                task_id="download_video", video_id=video.output, destination="{{ params.destination }}"
            )
            wait >> download

    with DAG(
        dag_id=f"veo_e2e_generate_{mode}", schedule=None, start_date=START, catchup=False, params=PARAMS
    ):
        VeoGenerateVideoOperator(
            task_id="generate_video",
            prompt="{{ params.prompt }}",
            model="{{ params.model }}",
            size="{{ params.size }}",
            destination="{{ params.destination }}",
            poll_interval=0.2,
            timeout=60,
            deferrable=deferrable,
            retries=2,
            retry_delay=pendulum.duration(seconds=0),
        )
