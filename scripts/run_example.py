"""Run the text-to-video example DAG end to end and print where the MP4 landed.

Without ``AIRFLOW_CONN_VEO_DEFAULT`` the bundled emulator stands in for CometAPI (offline, free);
with it, the DAG talks to whatever API that connection names. Called by ``scripts/demo.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_FILE = ROOT / "example_dags" / "example_veo_text_to_video.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompt", default="A paper kite floats above a field at golden hour.")
    parser.add_argument("--seconds", default="4", choices=["4", "6", "8"])
    parser.add_argument("--destination", default=str(ROOT / "demo_output") + "/")
    parser.add_argument("--airflow-home", default=str(ROOT / ".airflow_home"))
    args = parser.parse_args()

    from airflow_provider_veo.testing.runner import airflow_environment, migrate_metadata_db

    # Airflow reads its configuration at first import: everything is set before that.
    os.environ.update(airflow_environment(Path(args.airflow_home), DAG_FILE.parent))
    emulator = None
    if "AIRFLOW_CONN_VEO_DEFAULT" not in os.environ:
        from airflow_provider_veo.testing import VeoEmulator

        emulator = VeoEmulator().start()
        os.environ.update(emulator.env())
        os.environ.setdefault("VEO_POLL_INTERVAL", "1")
        print(f"No AIRFLOW_CONN_VEO_DEFAULT: using the CometAPI emulator at {emulator.url}")
    else:
        print("Using the API of AIRFLOW_CONN_VEO_DEFAULT (a real job: it is billed)")
    try:
        migrate_metadata_db()
        from airflow_provider_veo.testing.runner import load_dag, run_dag

        result = run_dag(
            load_dag(DAG_FILE, "veo_text_to_video"),
            run_conf={"prompt": args.prompt, "seconds": args.seconds, "destination": args.destination},
        )
    finally:
        if emulator is not None:
            emulator.stop()
    for task in result.tasks:
        print(f"  task {task.task_id:<16} {task.state} (try {task.try_number})")
    if result.state != "success":
        print(f"DAG run {result.run_id} ended {result.state}", file=sys.stderr)
        return 1
    video = result.task("download_video").xcom["return_value"]
    print(f"\nThe video landed at {video['uri']}")
    print(json.dumps({**video, "seconds_asked": args.seconds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
