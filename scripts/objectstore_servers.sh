#!/usr/bin/env bash
# Install the object-store servers that tests/objectstore/ starts on loopback, the way a developer
# would, from the package registries: moto[server] (S3) and gcp-storage-emulator (GCS) from PyPI, with
# the amazon, google and microsoft-azure providers and s3fs, gcsfs and adlfs (pyproject.toml's `dev`
# group, installed by scripts/bootstrap.sh into the venv; VEO_VENV, AIRFLOW_VERSION and PYTHON as
# there), and Azurite from npm into .objectstore-servers/ (node and npm must be on PATH).
# Then: `.venv/bin/python -m pytest -m objectstore tests/objectstore`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/bootstrap.sh"
# The Azurite release this was tested with; its blob service speaks the API versions adlfs sends.
azurite_version=${VEO_AZURITE_VERSION:-3.35.0}
prefix="$root/.objectstore-servers"
azurite_blob="$prefix/node_modules/.bin/azurite-blob"
if [ ! -x "$azurite_blob" ] || [ "$("$azurite_blob" --version 2>/dev/null)" != "$azurite_version" ]; then
    echo "Installing azurite@$azurite_version from npm into $prefix ..." >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "azurite@$azurite_version" >&2
fi
for tool in moto_server gcp-storage-emulator; do
    if [ ! -x "$(dirname "$VEO_PYTHON")/$tool" ]; then
        echo "$tool is missing from $(dirname "$VEO_PYTHON"): is the dev group installed?" >&2
        exit 1
    fi
done
echo "S3: $(dirname "$VEO_PYTHON")/moto_server; GCS: $(dirname "$VEO_PYTHON")/gcp-storage-emulator;" \
    "Azure: $azurite_blob ($("$azurite_blob" --version))" >&2
