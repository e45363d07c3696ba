#!/usr/bin/env bash
# One-command setup for a fresh machine: a virtualenv with training, serving and
# dev dependencies. torch/torchvision are pinned in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[all]'
# Chromium, wrk, Prometheus and PostgreSQL from Debian (apt; only what is missing).
bash scripts/install_system_packages.sh || echo "setup: system packages missing; the browser, Prometheus and PostgreSQL tests and the serving bench need scripts/install_system_packages.sh" >&2
echo "setup done: activate with 'source $VENV/bin/activate'"
