#!/usr/bin/env bash
# One-command setup for a fresh machine (`make setup`): the Debian packages the tests and
# the image build need, and a virtualenv with exactly the locked versions of every extra
# (requirements/all.txt, hash-checked; `make lock` refreshes it from pyproject.toml).
#
#   MNIST_SKIP_APT=1 make setup   # no apt here: install the packages named in
#                                 # scripts/install_system_packages.sh yourself
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
VENV=${VENV:-.venv}

# apt runs beside pip (they wait on different things); its failure still stops setup.
apt_log=$(mktemp)
trap 'rm -f "$apt_log"' EXIT
if [ "${MNIST_SKIP_APT:-0}" = 1 ]; then
    echo "setup: MNIST_SKIP_APT=1, skipping system packages (see scripts/install_system_packages.sh)" >&2
    apt_pid=""
else
    bash scripts/install_system_packages.sh >"$apt_log" 2>&1 &
    apt_pid=$!
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# --no-deps: the lock already holds every dependency; pip only checks hashes and unpacks.
"$VENV/bin/python" -m pip install --quiet --no-deps --require-hashes -r requirements/all.txt
# The project itself, editable, built with the locked setuptools (no index round trip).
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check >&2; exit 1; }

if [ -n "$apt_pid" ] && ! wait "$apt_pid"; then
    cat "$apt_log" >&2  # ends with install_system_packages.sh's one-line reason
    exit 1
fi
[ -s "$apt_log" ] && cat "$apt_log"
echo "setup done: activate with 'source $VENV/bin/activate'"
