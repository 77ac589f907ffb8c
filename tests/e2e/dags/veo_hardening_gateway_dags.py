"""DAGs for ``tests/e2e/test_hardening_gateway.py``: a generate task with Airflow retries (so a test can
see that a failure is final: one try, however many retries were allowed), one whose visibility grace
is short, and a mapped generate task with its batch summary."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.summary import VeoBatchSummaryOperator
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {
    "prompt": Param("a fox in the snow", type="string"),
    "model": Param("veo3.1-fast", type="string"),
    "destination": Param("/tmp/veo-e2e/", type="string"),
}

for mode, deferrable in (("deferrable", True), ("poke", False)):
    for name, grace in (("generate", 60.0), ("short_grace", 2.0)):
        with DAG(
            dag_id=f"veo_hardening_{name}_{mode}",
            schedule=None,
            start_date=START,
            catchup=False,
            params=PARAMS,
        ):
            VeoGenerateVideoOperator(
                task_id="generate_video",
                prompt="{{ params.prompt }}",
                model="{{ params.model }}",
                destination="{{ params.destination }}",
                poll_interval=0.2,
                timeout=30,
                visibility_grace=grace,
                deferrable=deferrable,
                retries=2,
                retry_delay=pendulum.duration(seconds=0),
            )

#: A stored video, and a completed (billed) job whose /content answers 502 forever.
SUMMARY_PROMPTS = [
    "A lighthouse beam sweeps across a stormy sea at night.",
    "A clip Google blocked after rendering it [emu:content_unavailable=true]",
]

with DAG(
    dag_id="veo_hardening_summary",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"destination": Param("/tmp/veo-e2e/", type="string")},
):
    videos = VeoGenerateVideoOperator.partial(
        task_id="generate_video",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        timeout=60,
        deferrable=False,
        retries=2,
        retry_delay=pendulum.duration(seconds=0),
    ).expand(prompt=SUMMARY_PROMPTS)
    videos >> VeoBatchSummaryOperator(
        task_id="summary",
        generate_task_id="generate_video",
        destination="{{ params.destination }}summary.json",
    )
