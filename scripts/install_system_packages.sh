#!/usr/bin/env bash
# Installs the Debian packages the project runs besides Python, in one apt transaction:
#   chromium (+ fonts-liberation)  the browser tests drive it by path (no `playwright install`)
#   wrk                            bench/serve_load.py's HTTP load generator
#   prometheus                     tests/service/test_prometheus.py scrapes /metrics with it;
#                                  its promtool unit-tests deploy/prometheus/alerts.yml
#   postgresql                     `make mlflow-server` and its tests run their own cluster
# Idempotent and non-interactive: installs only what is missing. Needs root (or sudo) and apt.
#
#     scripts/install_system_packages.sh
set -euo pipefail

have_pg() { command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; }
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
have_pg || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages already installed (chromium, wrk, prometheus, postgresql)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_system_packages.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install_system_packages.sh: apt-get not found; install ${missing[*]} yourself" >&2
    exit 1
}
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
