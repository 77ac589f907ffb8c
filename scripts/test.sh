#!/usr/bin/env bash
# Run ruff, mypy --strict on the package, and the whole test suite (unit, end-to-end against the
# emulator, the deployments); arguments go to pytest.
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
exec "$VEO_PYTHON" -m pytest "$@"
