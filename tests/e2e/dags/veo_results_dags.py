"""DAGs for ``tests/e2e/test_results.py``: what a stored video tells Airflow, and what a retry may reuse.

A prompt that names ``ti.try_number`` changes between tries, as a prompt edited before a clear does.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetAlias, Param

from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {"destination": Param("/tmp/veo-e2e/", type="string")}
VIDEOS = Asset("veo://e2e/videos")
PER_VIDEO = AssetAlias("veo-e2e-videos")


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS)


with _dag("veo_results_prompt_changes_between_tries"):
    # Try 1 meets an expired URL three times and fails; try 2 renders a different prompt.
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="a fox, take {{ ti.try_number }}",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        deferrable=False,
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )

for name, reuse in (("reuse", True), ("rerender", False)):
    with _dag(f"veo_results_{name}"):
        VeoGenerateVideoOperator(
            task_id="generate_video",
            prompt="a heron in the reeds",
            destination="{{ params.destination }}",
            poll_interval=0.2,
            deferrable=False,
            reuse_previous_job=reuse,
            retries=1,
            retry_delay=pendulum.duration(seconds=0),
        )

with _dag("veo_results_max_submissions"):
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="an otter, take {{ ti.try_number }}",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        deferrable=False,
        max_submissions=1,
        retries=1,
        retry_delay=pendulum.duration(seconds=0),
    )

with _dag("veo_results_published"):
    VeoGenerateVideoOperator.partial(
        task_id="generate_video",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        deferrable=True,
        write_manifest=True,
        outlets=[VIDEOS, PER_VIDEO],
    ).expand(
        prompt=["A lighthouse at night, waves crashing on the rocks below it", "Steam over a coffee cup"]
    )

with _dag("veo_results_execution_timeout"):
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="a job that never finishes [emu:polls=100000]",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        timeout=3600,
        execution_timeout=pendulum.duration(seconds=3),
        deferrable=True,
    )
