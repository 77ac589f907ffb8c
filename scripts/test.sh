#!/usr/bin/env bash
# What a contributor runs before sending a change: ruff, mypy --strict on the package, and the unit,
# emulator and end-to-end tests (DAG runs with dag.test() against the emulator). About 7 minutes on
# 2 idle cores, under 15 with a load average of 15; it needs nothing but Python.
#
# The deployment groups (real multi-process Airflow with SQLite or Celery and the UI in a browser,
# object-store servers, the benchmark's quick mode) are left out by their markers; they have their own command,
# scripts/test_deployments.sh.
#
# Arguments go to pytest after that selection: paths or -k narrow it, and a -m of your own replaces
# it (pytest keeps the last -m): `bash scripts/test.sh -m ""` runs every test pytest finds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/bootstrap.sh"
cd "$root"
"$VEO_PYTHON" -m ruff check .
"$VEO_PYTHON" -m ruff format --check .
# Types are checked against the newest supported Airflow, whose stubs the code is written to.
if [ "$airflow_version" = "$VEO_NEWEST_AIRFLOW" ]; then
    "$VEO_PYTHON" -m mypy
else
    echo "mypy: skipped on Airflow $airflow_version (checked on $VEO_NEWEST_AIRFLOW)"
fi
# The markers of scripts/test_deployments.sh's groups.
exec "$VEO_PYTHON" -m pytest -m "not deployment and not objectstore and not benchmark" "$@"
