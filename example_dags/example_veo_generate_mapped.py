"""One task per prompt: create, wait and download in a single deferrable task, mapped over a list.

Each mapped task waits in the triggerer and holds no worker slot. To cap how many jobs render at
CometAPI at once, give the tasks a pool that counts deferred tasks
(``airflow pools set veo 5 "CometAPI jobs in flight" --include-deferred`` and ``VEO_POOL=veo``):
a plain pool frees its slot when the task defers, so it would not limit the jobs. A retry of a
mapped task reconnects to the video it already paid for (Airflow 3.3+).

Once every prompt is done, ``summarize`` writes one table of the run's videos next to them
(``summary.csv``; a ``.json`` name gives JSON) and to its log: each prompt, its video id, where it
landed, its size and status, and for a job that was paid for but not stored the command that
fetches it later. It fails, after writing the table, when any video is missing, so the run shows it.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_veo.operators.summary import VeoBatchSummaryOperator
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))
DESTINATION = os.environ.get("VEO_DESTINATION", "/tmp/veo-videos/")

PROMPTS = [
    "A lighthouse beam sweeps across a stormy sea at night.",
    "Steam rises from a cup of coffee on a rainy windowsill.",
    "A red fox trots through fresh snow in a birch forest.",
]

with DAG(
    dag_id="veo_generate_mapped",
    description="Generate one Veo 3.1 video per prompt with dynamic task mapping",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["veo", "example"],
):
    videos = VeoGenerateVideoOperator.partial(
        task_id="generate_video",
        model="veo3.1-fast",
        seconds=4,
        destination=DESTINATION,
        poll_interval=POLL_INTERVAL,
        timeout=30 * 60,
        deferrable=True,
        retries=2,
        pool=os.environ.get("VEO_POOL", "default_pool"),
    ).expand(prompt=PROMPTS)
    videos >> VeoBatchSummaryOperator(
        task_id="summarize",
        generate_task_id="generate_video",
        destination=DESTINATION.rstrip("/") + "/summary.csv",
    )
