#!/usr/bin/env bash
# The main job: run the text-to-video example DAG end to end and print where the MP4 landed.
# Without AIRFLOW_CONN_VEO_DEFAULT it runs against the bundled CometAPI emulator, offline and free;
# with it (a real key), against CometAPI itself.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/bootstrap.sh"
exec "$VEO_PYTHON" "$root/scripts/run_example.py" "$@"
