#!/usr/bin/env bash
# The test groups scripts/test.sh leaves out: each needs more than Python and takes minutes of its own.
#
#   sqlite       real deployments (api-server, scheduler, dag-processor, triggerers as processes) on
#                SQLite and LocalExecutor, and the UI in Debian's chromium                (-m "deployment and not celery")
#   celery       PostgreSQL, Redis, CeleryExecutor, two workers and two triggerers        (-m celery)
#   objectstore  generate to S3, GCS and Azure servers on loopback                        (-m objectstore)
#   benchmark    benchmarks/run.py --quick still runs (it checks the benchmark, not speed) (-m benchmark)
#
# Usage: bash scripts/test_deployments.sh [GROUP...] [-- PYTEST ARGS]   (no group: all, in that order)
# The deployments need Airflow 3.3+ and Debian's chromium, postgresql and redis-server
# (bash scripts/install_ci_system_packages.sh); the object stores their servers (as .ci/run installs them).
# Without them, those tests are skipped saying why. Every group runs even if one fails; the times and
# outcomes are printed at the end, and the exit status is 1 if any group failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/bootstrap.sh"
cd "$root"

declare -A selection=(
    [sqlite]="deployment and not celery"
    [celery]="celery"
    [objectstore]="objectstore"
    [benchmark]="benchmark"
)
all=(sqlite celery objectstore benchmark)

groups=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        *)
            if [ -z "${selection[$1]+set}" ]; then
                echo "unknown group '$1': pick from ${all[*]}" >&2
                exit 2
            fi
            groups+=("$1")
            shift
            ;;
    esac
done
[ ${#groups[@]} -gt 0 ] || groups=("${all[@]}")

summary=()
failed=0
for group in "${groups[@]}"; do
    echo "=== test group: $group"
    start=$SECONDS
    status=0
    "$VEO_PYTHON" -m pytest -m "${selection[$group]}" "$@" || status=$?
    case "$status" in
        0) outcome="passed" ;;
        5) outcome="no tests" ;;  # pytest's "nothing collected": the group has no tests yet
        *) outcome="FAILED (pytest exit $status)"; failed=1 ;;
    esac
    summary+=("$(printf '%4d s  %-12s %s' $((SECONDS - start)) "$group" "$outcome")")
done
echo "=== test groups"
printf '%s\n' "${summary[@]}"
exit "$failed"
