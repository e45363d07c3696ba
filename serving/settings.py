"""The service's settings from the environment, each default here once.

Read when serving/service.py is imported: BentoML takes the service's options (workers,
timeout) from its decorator then, so they cannot wait for a worker to start.

    MNIST_MODEL_PATH       the exported model.onnx (model.json beside it)
    MNIST_MAX_CONCURRENCY  requests past their body read, per API worker, before a 429 (64)
    MNIST_BODY_TIMEOUT_S   seconds from request headers to the last body byte before a 408 (5)
    MNIST_HEADER_TIMEOUT_S seconds from connect (or a request's first byte) to full headers (5)
    MNIST_KEEPALIVE_S      seconds a kept-alive connection may be silent between requests (75)
    MNIST_API_WORKERS      API worker processes (default 1: each holds its own session)
"""

from __future__ import annotations

import os

from mnist_mlops import imaging
from serving.connections import HEADER_TIMEOUT_S as DEFAULT_HEADER_TIMEOUT_S
from serving.connections import KEEPALIVE_S as DEFAULT_KEEPALIVE_S

API_WORKERS = int(os.environ.get("MNIST_API_WORKERS", "1"))
# Any request body: the largest upload (imaging.MAX_BYTES) plus multipart framing, or a
# full batch of JSON pixels (256 x 784 numbers is about 3 MB even with long decimals).
MAX_BODY_BYTES = imaging.MAX_BYTES + 1024 * 1024
DECODE_THREADS = 2  # large images decode off the event loop; few threads, few arenas
BODY_TIMEOUT_S = float(os.environ.get("MNIST_BODY_TIMEOUT_S", "5"))
# BentoML's whole-request timeout (504). Its middleware never cancels its per-request timer,
# whose copied context keeps ~10 kB of request state alive until it fires: memory grows
# with rate x timeout (30 s: +57 MB at 170 req/s), so keep it short. Just above the
# body deadline, so a stalled body gets the front's 408, not a 504.
REQUEST_TIMEOUT_S = BODY_TIMEOUT_S + 1
# BentoML puts every request in an OpenTelemetry span even with tracing off (sample rate
# 0): on the predict routes that cost more CPU than the model (bench/serve_load.py's CPU
# column). To trace them, override ``tracing.excluded_urls`` in BentoML's configuration.
UNTRACED_URLS = "/predict"  # a regex searched in the URL: all the /predict* routes
HEADER_TIMEOUT_S = float(os.environ.get("MNIST_HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S))
KEEPALIVE_S = float(os.environ.get("MNIST_KEEPALIVE_S", DEFAULT_KEEPALIVE_S))
MAX_IN_FLIGHT = int(os.environ.get("MNIST_MAX_CONCURRENCY", "64"))
