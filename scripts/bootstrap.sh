#!/usr/bin/env bash
# Create or refresh the project's virtual environment: the provider (editable), Airflow and the test tools.
# VEO_VENV picks the folder (default .venv), AIRFLOW_VERSION the Airflow release (default 3.3.2).
# Sourced by demo.sh and test.sh; prints the venv's python on stdout when run directly.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VEO_VENV:-$root/.venv}
VEO_NEWEST_AIRFLOW=3.3.2
airflow_version=${AIRFLOW_VERSION:-$VEO_NEWEST_AIRFLOW}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
stamp="$venv/.veo-installed"
want="$airflow_version $(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing apache-airflow==$airflow_version and the provider into $venv ..." >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv >&2
    "$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" \
        "apache-airflow==$airflow_version" -e "$root[test]" >&2
    echo "$want" > "$stamp"
fi
VEO_PYTHON="$venv/bin/python"
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "$VEO_PYTHON"
fi
