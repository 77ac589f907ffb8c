"""DAGs for the fault-injection and security tests (``tests/e2e/test_faults.py``, ``test_security.py``).

``veo_e2e_dags.py`` holds the shapes every end-to-end test shares; these are the extra ones the fault
suite needs: a generate task with a one-second deadline, and a create task whose every field is
templated from the run's params, so a test can render them into something invalid.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.veo import VeoCreateVideoOperator, VeoGenerateVideoOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

for mode, deferrable in (("deferrable", True), ("poke", False)):
    with DAG(
        dag_id=f"veo_fault_generate_timeout_{mode}",
        schedule=None,
        start_date=START,
        catchup=False,
        params={
            "prompt": Param("a fox in the snow", type="string"),
            "destination": Param("/tmp/veo-e2e/", type="string"),
        },
    ):
        VeoGenerateVideoOperator(
            task_id="generate_video",
            prompt="{{ params.prompt }}",
            destination="{{ params.destination }}",
            poll_interval=0.2,
            timeout=1,
            deferrable=deferrable,
        )

with DAG(
    dag_id="veo_fault_templated_create",
    schedule=None,
    start_date=START,
    catchup=False,
    params={
        "prompt": Param("a fox in the snow", type="string"),
        "model": Param("veo3.1-fast", type="string"),
        "seconds": Param("4", type="string"),
        "size": Param("1280x720", type="string"),
    },
):
    VeoCreateVideoOperator(
        task_id="create_video",
        prompt="{{ params.prompt }}",
        model="{{ params.model }}",
        seconds="{{ params.seconds }}",
        size="{{ params.size }}",
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    )
