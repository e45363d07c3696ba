#!/usr/bin/env bash
# Installs the C tools the serving tests and benchmark run: wrk (HTTP load generator,
# bench/serve_load.py) and Prometheus (tests/serving/test_prometheus.py scrapes /metrics
# with a real server). Idempotent and non-interactive; needs root (or sudo) and apt.
#
#     scripts/install_serving_tools.sh
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
    echo "wrk and prometheus already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_serving_tools.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install_serving_tools.sh: apt-get not found; install ${missing[*]} yourself" >&2
    exit 1
}
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
