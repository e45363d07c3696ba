"""The MNIST digit classifier as a BentoML service: ONNX Runtime on CPU, no torch.

Run it from the repository root (the model and its card come from the export stage)::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve serving.service:MnistClassifier --port 3000

    curl -F image=@digit.png http://127.0.0.1:3000/predict
    curl -H 'Content-Type: application/json' -d '{"pixels": [...784 values]}' \\
        http://127.0.0.1:3000/predict_array     # /predict_batch: {"images": [[...], ...]}

Every endpoint takes ``return_input`` (default false): when true each prediction also
carries ``model_input``, a base64 PNG of the 28x28 array the model saw. Each worker
runs its own ONNX Runtime session in the event loop (the MLP needs ~0.1 ms an image,
less than a thread hop); /predict_batch batches on the client's side. Over HTTP the
APIs are reached through :mod:`serving.guard` (deadlines, bounds, 429, one error shape)
and :mod:`serving.endpoints`. Settings, read from the environment at import:

    MNIST_MODEL_PATH       the exported model.onnx (model.json beside it)
    MNIST_MAX_CONCURRENCY  requests past their body read, per API worker, before a 429 (64)
    MNIST_BODY_TIMEOUT_S   seconds from request headers to the last body byte before a 408 (5)
    MNIST_HEADER_TIMEOUT_S seconds from connect (or the last answer) to full headers (5)
    MNIST_API_WORKERS      API worker processes (default 1: each holds its own session)

A model that fails its SHA-256 check does not crash the worker (BentoML would restart
it forever): ``/readyz`` and every endpoint answer 503 instead."""

from __future__ import annotations

import gc
import io
import logging
import os
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import bentoml
import numpy as np
from PIL import Image
from starlette.responses import JSONResponse

from mnist_mlops import imaging
from serving import connections
from serving.endpoints import Endpoints
from serving.errors import error_response, image_error_status
from serving.feedback import FEEDBACK_ROUTE, Digit, FeedbackReceipt, RequestId
from serving.guard import GuardLimits, RequestGuard
from serving.metrics import service_metrics
from serving.model_loading import LoadedModel, load_configured_model
from serving.monitoring import RequestOrigin, start_monitoring
from serving.openapi import openapi_document
from serving.predictions import to_predictions
from serving.schemas import (
    BatchInput,
    BatchPrediction,
    ImageUpload,
    PixelsInput,
    Prediction,
    ReturnInput,
)
from serving.ui import UI_PATH, static_app

logger = logging.getLogger(__name__)

API_WORKERS = int(os.environ.get("MNIST_API_WORKERS", "1"))
# Any request body: the largest upload (imaging.MAX_BYTES) plus multipart framing, or a
# full batch of JSON pixels (256 x 784 numbers is about 3 MB even with long decimals).
MAX_BODY_BYTES = imaging.MAX_BYTES + 1024 * 1024
DECODE_THREADS = 2  # large images decode off the event loop; few threads, few arenas
# Images up to this many pixels (the /ui canvas is 280x280) decode in the event loop:
# about 1 ms, cheaper than the hop to a thread and back (bench/serve_load.py, PNG rows).
INLINE_DECODE_PIXELS = 320 * 320
BODY_TIMEOUT_S = float(os.environ.get("MNIST_BODY_TIMEOUT_S", "5"))
# BentoML's whole-request timeout (504). Its middleware never cancels its per-request timer,
# whose copied context keeps ~10 kB of request state alive until it fires: memory grows
# with rate x timeout (30 s: +57 MB at 170 req/s), so keep it short. Just above the
# body deadline, so a stalled body gets the guard's 408, not a 504.
REQUEST_TIMEOUT_S = BODY_TIMEOUT_S + 1
# BentoML puts every request in an OpenTelemetry span even with tracing off (sample rate
# 0): on the predict routes that cost more CPU than the model (bench/serve_load.py's CPU
# column). To trace them, override ``tracing.excluded_urls`` in BentoML's configuration.
UNTRACED_URLS = "/predict"  # a regex searched in the URL: /predict, _array, _batch


@bentoml.service(
    name="mnist_classifier",
    description="Classifies handwritten digits (MNIST MLP, ONNX Runtime on CPU).",
    workers=API_WORKERS,
    traffic={"timeout": REQUEST_TIMEOUT_S},  # no max_concurrency: the guard counts later
    tracing={"excluded_urls": UNTRACED_URLS},
)
class MnistClassifier:
    """Loads the model once; every endpoint funnels into :meth:`_answer`."""

    def __init__(self) -> None:
        self._model: LoadedModel | None = None
        self._load_error: str | None = None
        self._decoders = anyio.CapacityLimiter(DECODE_THREADS)
        self._metrics = service_metrics()
        try:
            path, self._model = load_configured_model()
        except Exception as exc:  # checksum, missing file, or ONNX Runtime refusing it
            self._load_error = f"model not loaded: {exc}"
            logger.error("ModelLoadError: %s", exc)
        else:
            logger.info("Loaded %s (version %s)", path, self._model.version)
        self._log, self._feedback = start_monitoring(self._model)  # docs/monitoring.md
        # Everything loaded so far (BentoML, pydantic, ONNX Runtime: ~230k objects) lives as
        # long as the worker; freezing it keeps each full GC pass from scanning it all again,
        # which stalled the event loop for 150-250 ms on a busy 2-core box (issue 11's p99).
        gc.collect()
        gc.freeze()

    @bentoml.on_shutdown
    def _close_log(self) -> None:  # writes the inference records still queued
        self._log.close()

    async def __is_ready__(self) -> bool:
        """``/readyz``: ready once the model is loaded and checked."""
        return self._model is not None

    def _answer(
        self, pixels: Callable[[], np.ndarray], source: str | None, return_input: bool
    ) -> list[Prediction] | JSONResponse:
        """Preprocess (timed as ``source``, if given), run the model, count the answers.

        4xx/503 come back as JSON responses, which BentoML passes through untouched.
        """
        if self._model is None:
            return error_response(503, str(self._load_error))
        start = time.perf_counter()
        try:
            batch = pixels()
        except imaging.ImageError as exc:
            return error_response(image_error_status(exc), str(exc))
        if source is not None:
            self._metrics.preprocess_seconds.labels(source=source).observe(
                time.perf_counter() - start
            )
        probabilities = self._model.probabilities(batch)
        self._metrics.observe_predictions(probabilities)
        request_ids = self._log.record(batch, probabilities)
        return to_predictions(probabilities, batch, self._model.version, return_input, request_ids)

    @bentoml.api(route="/predict")
    async def predict(self, image: ImageUpload, return_input: ReturnInput = False) -> Prediction:
        """Classify an uploaded image (multipart/form-data, field ``image``).

        The image is cropped to the ink, scaled into 20x20 and centred by mass in 28x28,
        as MNIST digits were. Large images decode in a small thread pool.
        """
        return await self.classify_upload(image.read_bytes(), return_input)  # type: ignore[return-value]

    async def classify_upload(self, data: bytes, return_input: bool) -> Prediction | JSONResponse:
        """:meth:`predict` on the upload's bytes (serving.endpoints calls this directly)."""
        start = time.perf_counter()
        try:
            if _pixels(data) <= INLINE_DECODE_PIXELS:
                batch = imaging.preprocess_image(data)
            else:
                batch = await anyio.to_thread.run_sync(
                    imaging.preprocess_image, data, limiter=self._decoders
                )
        except imaging.ImageError as exc:
            return error_response(image_error_status(exc), str(exc))
        self._metrics.preprocess_seconds.labels(source="image").observe(time.perf_counter() - start)
        answer = self._answer(lambda: batch[None], None, return_input)
        return answer if isinstance(answer, JSONResponse) else answer[0]

    @bentoml.api(route="/predict_array")
    async def predict_array(
        self, pixels: PixelsInput, return_input: ReturnInput = False
    ) -> Prediction:
        """Classify one raw pixel array (used as is: not cropped or centred)."""
        answer = self._answer(
            lambda: imaging.pixels_from_array(pixels)[None], "array", return_input
        )
        return answer if isinstance(answer, JSONResponse) else answer[0]  # type: ignore[return-value]

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self, images: BatchInput, return_input: ReturnInput = False
    ) -> BatchPrediction:
        """Classify up to MAX_BATCH raw pixel arrays in one model call."""
        answer = self._answer(
            lambda: np.stack([imaging.pixels_from_array(p) for p in images]), "array", return_input
        )
        return answer if isinstance(answer, JSONResponse) else BatchPrediction(predictions=answer)  # type: ignore[return-value]

    @bentoml.api(route=FEEDBACK_ROUTE)
    async def feedback(self, request_id: RequestId, digit: Digit) -> FeedbackReceipt:
        """The digit the image answered as ``request_id`` really shows (kept once per id)."""
        return await self._feedback.receive(request_id, digit)  # type: ignore[return-value]


def _pixels(data: bytes) -> int:
    """The image's pixel count from its header (no decoding); huge if it has none."""
    try:
        with Image.open(io.BytesIO(data), formats=list(imaging.FORMATS)) as img:
            return img.width * img.height
    except Exception:  # not an image: imaging says why, in the thread pool
        return imaging.MAX_PIXELS + 1


# Declarative, like the decorators above: BentoML applies these when it builds the app.
# Before uvicorn loads its config in this worker (see serving.connections).
connections.install(float(os.environ.get("MNIST_HEADER_TIMEOUT_S", connections.HEADER_TIMEOUT_S)))
# Outermost (added first): notes each predict request's route and source for the log.
MnistClassifier.add_asgi_middleware(RequestOrigin)
MnistClassifier.add_asgi_middleware(
    RequestGuard,
    limits=GuardLimits(
        max_bytes=MAX_BODY_BYTES,
        body_timeout_s=BODY_TIMEOUT_S,
        max_in_flight=int(os.environ.get("MNIST_MAX_CONCURRENCY", "64")),
    ),
    api_routes=tuple(api.route for api in MnistClassifier.apis.values()),
    upload_routes=(MnistClassifier.apis["predict"].route,),
    openapi=lambda: openapi_document(MnistClassifier),
    endpoints=Endpoints(MnistClassifier),
)
# The draw-a-digit page (serving/static/), at /ui/ beside the API it calls.
MnistClassifier.mount_asgi_app(static_app(), path=UI_PATH)
