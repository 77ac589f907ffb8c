#!/usr/bin/env bash
# Create or refresh the project's virtual environment: the provider (editable), Airflow and the
# development tools (pyproject.toml's `dev` dependency group: pytest, the HTTP mocks, ruff, mypy,
# playwright, build, the Celery deployment's providers).
# VEO_VENV picks the folder (default .venv), AIRFLOW_VERSION the Airflow release (default 3.3.2),
# PYTHON the interpreter that creates the venv (default python3; an existing venv must match it).
# Sourced by demo.sh and test.sh; prints the venv's python on stdout when run directly.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VEO_VENV:-$root/.venv}
VEO_NEWEST_AIRFLOW=3.3.2
airflow_version=${AIRFLOW_VERSION:-$VEO_NEWEST_AIRFLOW}
python=${PYTHON:-python3}

python_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
elif [ -n "${PYTHON:-}" ] && [ "$(python_minor "$venv/bin/python")" != "$(python_minor "$python")" ]; then
    echo "$venv has Python $(python_minor "$venv/bin/python"), not $(python_minor "$python") as" \
        "PYTHON=$python asks: remove it or pick another VEO_VENV" >&2
    exit 1
fi
# The newest Airflow also gets the optional OpenLineage provider, so its facets are tested there and
# the older ones prove the provider works without it.
extras=""
if [ "$airflow_version" = "$VEO_NEWEST_AIRFLOW" ]; then
    extras="[openlineage]"
fi
# What an Airflow release pins in its constraints file (on GitHub, which CI cannot reach) but not in
# its metadata, where a newer release of the package breaks it. 3.2.x:
#   fastapi<0.137, the cap 3.3 declares: from 0.156.1 on, 3.2's execution API fails to build its
#     schemas ("TITerminalStatePayload needs a discriminator field"), so no task runs;
#   svcs<26.2: 26.2 detaches its registry from app.state when the lifespan ends, and the in-process
#     execution API of 3.2 (dag.test()) loses it ("'State' object has no attribute 'svcs_registry'").
# 3.1.x:
#   cryptography<51: 51 made MultiFernet a Rust class that takes no new attributes, and 3.1 sets
#     `is_encrypted` on it, so once a Fernet key is set every deferral (trigger kwargs are encrypted)
#     and every encrypted connection or variable fails; 3.1 works from its own floor (44.0.3) to
#     50.x (tests/e2e/test_fernet_deferral.py). 3.3 wraps MultiFernet instead.
pins=()
case "$airflow_version" in
    3.1.*) pins+=("cryptography<51") ;;
    3.2.*) pins+=("fastapi<0.137" "svcs<26.2") ;;
esac
stamp="$venv/.veo-installed"
want="$airflow_version $extras ${pins[*]:-} $(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing apache-airflow==$airflow_version, the provider and the dev group into $venv ..." >&2
    # uv installs a PEP 735 dependency group from a pyproject.toml path (--group path:name); the floor
    # is the release this was tested with.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.13" >&2
    "$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" \
        "apache-airflow==$airflow_version" ${pins[@]+"${pins[@]}"} -e "$root$extras" \
        --group "$root/pyproject.toml:dev" >&2
    echo "$want" > "$stamp"
fi
VEO_PYTHON="$venv/bin/python"
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "$VEO_PYTHON"
fi
