"""The DAG of the object-store group (``tests/objectstore/``): generate to a store given as a run
parameter, maybe from a reference image read from a store, with a manifest and a batch summary
beside the video. Prompt markers (``[emu:bytes=N]``) size the emulator's video."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_veo.operators.summary import VeoBatchSummaryOperator
from airflow_provider_veo.operators.veo import VeoGenerateVideoOperator

#: Seconds the generate task of ``veo_objectstore_generate_only`` may run (its store hangs).
EXECUTION_TIMEOUT = 50

with DAG(
    dag_id="veo_objectstore_generate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "destination": Param("s3://aws_default@videos/", type="string"),
        "prompt": Param("A heron lands on a misty pond at dawn.", type="string"),
        # An image in a store, as the first frame; empty for none.
        "reference": Param("", type="string"),
    },
):
    video = VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="{{ params.prompt }}",
        input_reference="{{ params.reference }}",
        destination="{{ params.destination }}",
        write_manifest=True,
        poll_interval=0.2,
        timeout=120,
        deferrable=False,
    )
    video >> VeoBatchSummaryOperator(
        task_id="summary",
        generate_task_id="generate_video",
        destination="{{ params.destination }}summary.json",
    )

with DAG(
    dag_id="veo_objectstore_generate_only",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "destination": Param("s3://aws_default@videos/", type="string"),
        "prompt": Param("A heron lands on a misty pond at dawn.", type="string"),
    },
):
    # The store hangs under this one (tests/objectstore/test_failures.py): no summary to wait for, and
    # the bound a careful user sets, since nothing in s3fs times out a body sent to a hung server.
    VeoGenerateVideoOperator(
        task_id="generate_video",
        prompt="{{ params.prompt }}",
        destination="{{ params.destination }}",
        poll_interval=0.2,
        timeout=120,
        deferrable=False,
        execution_timeout=pendulum.duration(seconds=EXECUTION_TIMEOUT),
    )
