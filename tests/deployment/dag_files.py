"""The DAG file the deployment tests write next to the copied example DAGs.

Each DAG maps one ``VeoGenerateVideoOperator`` over the prompts of its run's conf, so one DAG serves
one prompt or two hundred; what differs between them is the pool, poke or deferrable mode, and
retries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GenerateDag:
    """One test DAG: ``generate_video`` mapped over ``dag_run.conf["prompts"]``."""

    pool: str = "default_pool"
    deferrable: bool = True
    retries: int = 0
    retry_delay_seconds: float = 2.0


TEMPLATE = '''"""DAGs of the deployment tests: one generate task per prompt in the run's conf."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

DAGS = {dags!r}

for dag_id, spec in DAGS.items():
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_tasks=500,
        tags=["veo", "deployment-test"],
    ):

        @task
        def prompts(dag_run=None) -> list[str]:
            return list(dag_run.conf["prompts"])

        VeoGenerateVideoOperator.partial(
            task_id="generate_video",
            seconds=4,
            destination=os.environ["VEO_DESTINATION"],
            poll_interval=float(os.environ["VEO_POLL_INTERVAL"]),
            timeout=15 * 60,
            deferrable=spec["deferrable"],
            pool=spec["pool"],
            retries=spec["retries"],
            retry_delay=timedelta(seconds=spec["retry_delay_seconds"]),
        ).expand(prompt=prompts())
'''


def dag_file(dags: dict[str, GenerateDag]) -> str:
    """The source of a DAG file defining ``dags``."""
    return TEMPLATE.format(dags={dag_id: asdict(spec) for dag_id, spec in dags.items()})
