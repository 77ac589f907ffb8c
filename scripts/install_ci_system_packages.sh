#!/usr/bin/env bash
# Install the Debian packages the deployment tests (tests/deployment/) need: a headless chromium
# for the UI test, driven by Playwright through executable_path, and fonts so screenshots are legible;
# PostgreSQL and Redis for the Celery group, which starts its own postgres and redis-server as plain
# processes on loopback in temporary folders (the packages' own services are neither needed nor used).
# Idempotent and quiet: does nothing when everything is already installed. Needs root (or sudo).
set -euo pipefail

packages=(chromium fonts-dejavu-core fonts-liberation postgresql redis-server)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "Installing ${missing[*]} from Debian ..." >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v chromium >/dev/null
command -v redis-server >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
