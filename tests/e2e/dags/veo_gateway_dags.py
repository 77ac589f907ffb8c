"""DAGs for the gateway suite (``tests/e2e/test_gateway.py``): a generate task whose first try runs
out of time while the job is not visible yet, so its retry resumes a job the API does not show."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

for mode, deferrable in (("deferrable", True), ("poke", False)):
    with DAG(
        dag_id=f"veo_gateway_resume_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params={"destination": Param("/tmp/veo-e2e/", type="string")},
    ):
        VeoGenerateVideoOperator(
            task_id="generate_video",
            prompt="a heron at dawn",
            destination="{{ params.destination }}",
            poll_interval=0.5,
            timeout=2,
            deferrable=deferrable,
            retries=2,
            retry_delay=pendulum.duration(seconds=0),
        )
