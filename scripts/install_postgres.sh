#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for `make mlflow-server` and the tests that
# start a real PostgreSQL (tests/tracking/test_postgres_server.py, tests/pipeline/test_exp_queue.py).
# Idempotent and non-interactive: does nothing when pg_ctl is found. Needs root (or sudo) and apt.
#
#     scripts/install_postgres.sh
#
# Only the binaries are used: scripts/mlflow_server.sh runs its own cluster (initdb/pg_ctl)
# in a folder it owns, so the system service Debian sets up is not needed.
set -euo pipefail

found() { command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; }
if found; then
    echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_postgres.sh: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install_postgres.sh: apt-get not found; install PostgreSQL (initdb, pg_ctl) yourself" >&2
    exit 1
}
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
echo "installed: $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
