"""DAGs for the input tests (``tests/e2e/test_inputs.py``): arguments rendered from the run's conf
into anything, natively (numbers stay numbers), and a generate task whose retry comes after a pause,
in which a test damages the task's durable record."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.veo import VeoCreateVideoOperator, VeoGenerateVideoOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG(
    dag_id="veo_inputs_rendered",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "prompt": Param("a fox in the snow"),
        "seconds": Param(4),
        "input_reference": Param([]),
        "destination": Param("/tmp/veo-e2e/"),
        "reuse": Param(True),
    },
):
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="{{ params.prompt }}",
        seconds="{{ params.seconds }}",
        input_reference="{{ params.input_reference }}",
        destination="{{ params.destination }}",
        reuse_previous_job="{{ params.reuse }}",
        poll_interval=0.2,
        timeout=60,
        deferrable=False,
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    )

with DAG(dag_id="veo_inputs_mapped", schedule=None, start_date=START, catchup=False):
    VeoCreateVideoOperator.partial(
        task_id="create_video", prompt="a fox", retries=2, retry_delay=pendulum.duration(seconds=0)
    ).expand(seconds=[4, 5])

with DAG(
    dag_id="veo_inputs_retry_later",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"destination": Param("/tmp/veo-e2e/", type="string")},
):
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="a fox in the snow",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        timeout=60,
        deferrable=False,
        retries=2,
        retry_delay=pendulum.duration(seconds=5),
    )
