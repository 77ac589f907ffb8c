"""DAGs for ``tests/e2e/test_destinations.py``: a destination refused before paying, and a store that
fails after paying."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

with DAG(
    dag_id="veo_destination",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"destination": Param("/tmp/veo-e2e/", type="string")},
):
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="a kingfisher over a stream",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        deferrable=False,
        write_manifest=True,
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )
