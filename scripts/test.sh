#!/usr/bin/env bash
# Run the whole test suite (unit, end-to-end against the emulator, and the others) and ruff.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/bootstrap.sh"
cd "$root"
"$VEO_PYTHON" -m ruff check .
"$VEO_PYTHON" -m ruff format --check .
exec "$VEO_PYTHON" -m pytest "$@"
