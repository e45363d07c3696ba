# mnist-mlops: `make help` lists the targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup lock image repro test test-fast lint serve serve-follow mlflow-ui mlflow-server bench bench-serve bench-score report clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup:  ## system packages + .venv with the locked versions of everything (MNIST_SKIP_APT=1: no apt)
	bash scripts/setup.sh

lock:  ## re-resolve requirements/*.txt from pyproject.toml (ARGS=--upgrade for newest releases)
	bash scripts/lock.sh $(ARGS)

repro:  ## run the whole pipeline (set MNIST_MIRROR=<url or folder> to use another mirror)
	dvc repro

test:  ## run every test, slow ones included (what CI runs, after dvc repro); the slowest listed
	pytest -q --durations=25

test-fast:  ## skip the slow tests (real training, dvc repro, served processes)
	pytest -q -m "not slow"

lint:  ## ruff lint + format check
	ruff check . && ruff format --check .

serve:  ## serve the registry's champion, models/champion/, on :3000 (MNIST_MODEL_PATH=<file>: that file)
	bentoml serve serving.service:MnistClassifier --host 127.0.0.1 --port 3000

serve-follow:  ## serve models:/mnist-mlp@champion from the registry and follow its moves live
	MNIST_MODEL_URI=models:/$$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['mlflow']['registered_model'])")@champion \
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-$$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['mlflow']['tracking_uri'])")} \
	bentoml serve serving.service:MnistClassifier --host 127.0.0.1 --port 3000

image:  ## build the serving image with podman on a Debian base (after dvc repro; README)
	bash scripts/podman_image.sh build

mlflow-ui:  ## browse runs at http://127.0.0.1:5000 (loopback only)
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

mlflow-server:  ## shared tracking server: PostgreSQL + artifacts, http://127.0.0.1:5000
	bash scripts/mlflow_server.sh

bench: data/processed  ## training speed benchmark (table + JSON under bench/results)
	python bench/train_speed.py data/processed

data/processed:  # the split stage's output, which the benchmark trains on
	dvc repro split

bench-serve:  ## HTTP load with wrk: bare Starlette vs minimal BentoML vs ours (add ARGS=--quick)
	python bench/serve_load.py $(ARGS)

bench-score:  ## bulk scoring vs ONNX Runtime called directly (add ARGS="--sizes 10000")
	python bench/bulk_score.py $(ARGS)

report:  ## render docs/results.md again after a benchmark (the report stage; dvc repro runs it too)
	dvc repro report

# DVC writes each cached output of dvc.yaml into the .gitignore of its folder; git clean -X
# removes only ignored files, so the committed metrics, plots and model card stay.
clean:  ## remove the pipeline's cached outputs: data, checkpoint, ONNX, Bento, rendered plots
	git clean -fdX -- data models plots metrics bentos
