# Slim serving image: ONNX Runtime + BentoML from the lock (requirements/serve.txt), no torch,
# non-root, model baked in. Build after `dvc repro`: it bakes in models/champion/, what the
# registry's champion serves (the champion stage: the artifact the gate chose for that
# version, its card, served.json and the smoke set: the service's default source, found
# from WORKDIR /app), never the last file trained. To follow the registry instead
# (mlflow-skinny is in the lock; the baked-in smoke set checks each new version):
# -e MNIST_MODEL_URI=models:/mnist-mlp@champion -e MLFLOW_TRACKING_URI=http://<server>:5000
#   docker build -t mnist-mlops . && docker run -p 3000:3000 mnist-mlops
# Without a Docker engine, scripts/podman_image.sh builds and runs it with podman (README).
#
# BASE_IMAGE: any Debian-like image with python3 (3.11, the lock's Python), python3-venv,
# useradd and CA certificates; podman_image.sh passes one it made with mmdebstrap.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/src \
    BENTOML_HOME=/home/app/bentoml \
    BENTOML_HOST=0.0.0.0 \
    BENTOML_PORT=3000

# /app/monitoring: the inference log and the corrections store (docs/monitoring.md), the
# service's defaults relative to /app; a volume keeps them across containers.
RUN useradd --create-home --uid 10001 --user-group app \
    && mkdir -p /app/monitoring && chown 10001:10001 /app/monitoring
WORKDIR /app

# The exact, hash-checked serving set (numpy, Pillow, OpenCV headless, ONNX Runtime, BentoML
# and their dependencies), first and alone so code changes reuse this layer.
COPY requirements/serve.txt requirements/serve.txt
RUN python3 -m venv /opt/venv \
    && pip install --no-deps --require-hashes -r requirements/serve.txt \
    && pip check

# The torch-free library code is imported from /app/src (PYTHONPATH), not installed: the
# lock above is all that pip puts in the image.
COPY src/ src/
COPY serving/ serving/
COPY models/champion/ models/champion/

USER 10001:10001
VOLUME /app/monitoring
EXPOSE 3000
# BENTOML_HOST/BENTOML_PORT set where `bentoml serve` listens; the check follows the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(u.urlopen(f\"http://127.0.0.1:{os.environ['BENTOML_PORT']}/readyz\", timeout=4).status != 200)"]
CMD ["bentoml", "serve", "serving.service:MnistClassifier"]
