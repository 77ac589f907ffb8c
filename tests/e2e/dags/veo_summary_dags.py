"""DAGs for the batch summary test (``tests/e2e/test_summary.py``): a generate task mapped over three
prompts that end three ways, steered by the emulator's prompt markers (a stored video, a failed
job, and a job whose every download is corrupt, so it is paid for but never stored), and two
summaries of it, one CSV and one JSON, written next to the videos."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.summary import VeoBatchSummaryOperator
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

PROMPTS = [
    "A lighthouse beam sweeps across a stormy sea at night.",
    "A storm the safety filter refuses [emu:outcome=failed]",
    "A kite whose every download is corrupt [emu:corrupt_download=true]",
]

with DAG(
    dag_id="veo_summary_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"destination": Param("/tmp/veo-e2e/", type="string")},
):
    videos = VeoGenerateVideoOperator.partial(
        task_id="generate_video",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        timeout=60,
        deferrable=False,
    ).expand(prompt=PROMPTS)
    videos >> [
        VeoBatchSummaryOperator(
            task_id=f"summary_{suffix}",
            generate_task_id="generate_video",
            destination=f"{{{{ params.destination }}}}summary.{suffix}",
        )
        for suffix in ("csv", "json")
    ]
