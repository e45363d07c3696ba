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
# Chromium for the browser tests of the /ui page (apt; skipped when already installed).
bash scripts/install_browser.sh || echo "setup: no Chromium; the browser tests (pytest -m browser) will fail until scripts/install_browser.sh succeeds" >&2
# wrk and Prometheus for the serving benchmark and the metrics scrape test (apt).
bash scripts/install_serving_tools.sh || echo "setup: no wrk/prometheus; bench/serve_load.py and tests/serving/test_prometheus.py need scripts/install_serving_tools.sh" >&2
# PostgreSQL binaries for `make mlflow-server` and the tests that start a real one (apt).
bash scripts/install_postgres.sh || echo "setup: no PostgreSQL; make mlflow-server and its tests will fail until scripts/install_postgres.sh succeeds" >&2
echo "setup done: activate with 'source $VENV/bin/activate'"
