# Slim serving image: ONNX Runtime + BentoML, no torch, non-root, model baked in.
# Build after `dvc repro` (it needs models/model.onnx and models/model.json):
#   docker build -t mnist-mlops . && docker run -p 3000:3000 mnist-mlops
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BENTOML_HOME=/home/app/bentoml \
    MNIST_MODEL_PATH=/app/models/model.onnx

# /app/monitoring: the inference log and the corrections store (docs/monitoring.md), the
# service's defaults relative to /app; a volume keeps them across containers.
RUN useradd --create-home --uid 10001 app && mkdir -p /app/monitoring && chown app /app/monitoring
WORKDIR /app

# Install the serving extra only: numpy, Pillow, OpenCV (headless), ONNX Runtime, BentoML.
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install '.[serve]'

COPY serving/ serving/
COPY models/model.onnx models/model.json models/

USER app
VOLUME /app/monitoring
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/readyz', timeout=4).status == 200 else 1)"
CMD ["bentoml", "serve", "serving.service:MnistClassifier", "--host", "0.0.0.0", "--port", "3000"]
