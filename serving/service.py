"""The MNIST digit classifier as a BentoML service: ONNX Runtime on CPU, no torch.

Run it from the repository root: it serves the artifact the gate chose (``models/served.json``,
written by the field stage; the model and its card come from the export stage)::

    bentoml serve serving.service:MnistClassifier --port 3000
    MNIST_MODEL_PATH=models/model.onnx bentoml serve ...  # float32, whatever the gate chose

    curl -F image=@digit.png http://127.0.0.1:3000/predict
    curl -H 'Content-Type: application/json' -d '{"pixels": [...784 values]}' \\
        http://127.0.0.1:3000/predict_array     # /predict_batch: {"images": [[...], ...]}
    curl -H 'Content-Type: application/x-npy' --data-binary @digits.npy \\
        http://127.0.0.1:3000/predict_npy  # numpy.save of (N, 28, 28), N <= MAX_BATCH
        # add -H 'Accept: application/x-npy' for the answers as an .npy too

``return_input`` (all but /predict_npy) adds ``model_input``, a base64 PNG of what the
model saw. Each worker runs its ONNX Runtime session in the event loop (~0.1 ms an image,
less than a thread hop). The request path: :class:`serving.front.ApiFront` (added at the
end) reads and parses the body (:mod:`serving.routes`) and calls the methods below, whose
:class:`serving.errors.ServiceError` it answers as ``{"error": ...}``. Settings (the
environment's ``MNIST_*``): :mod:`serving.settings`.

A model that fails its SHA-256 check does not crash the worker (BentoML would restart
it forever): ``/readyz`` and every endpoint answer 503 instead.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import bentoml
import numpy as np
from starlette.responses import Response

from serving import inputs, settings
from serving.connections import HeaderDeadlines
from serving.errors import INPUT_ERROR_TYPES, ServiceError, refusal
from serving.feedback import FEEDBACK_ROUTE, Digit, FeedbackReceipt, RequestId
from serving.front import ApiFront, Limits
from serving.metrics import service_metrics
from serving.model_loading import LoadedModel, load_configured_model
from serving.monitoring import RequestOrigin, start_monitoring
from serving.openapi import openapi_document
from serving.predictions import npy_answer, to_predictions
from serving.routes import binary_route, json_route, upload_route
from serving.schemas import (
    NPY_MEDIA_TYPES,
    BatchInput,
    BatchPrediction,
    ImageUpload,
    NpyUpload,
    PixelsInput,
    Prediction,
    ReturnInput,
)
from serving.ui import UI_PATH, static_app

logger = logging.getLogger(__name__)


@bentoml.service(
    name="mnist_classifier",
    description="Classifies handwritten digits (MNIST MLP, ONNX Runtime on CPU).",
    workers=settings.API_WORKERS,
    traffic={"timeout": settings.REQUEST_TIMEOUT_S},  # no max_concurrency: the front counts later
    tracing={"excluded_urls": settings.UNTRACED_URLS},
)
class MnistClassifier:
    """Loads the model once; every endpoint is :meth:`_model_input` then :meth:`_predict`."""

    def __init__(self) -> None:
        self._model: LoadedModel | None = None
        self._load_error: str | None = None
        self._decoders = anyio.CapacityLimiter(settings.DECODE_THREADS)
        self._metrics = service_metrics()
        try:
            self._model = load_configured_model()
        except Exception as exc:  # checksum, missing file, or ONNX Runtime refusing it
            self._load_error = f"model not loaded: {exc}"
            logger.error("ModelLoadError: %s", exc)
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

    def readiness(self) -> dict[str, str]:
        """A ready ``/readyz``'s body (:mod:`serving.front`): which model answers, so a probe
        or a person sees the precision serving without sending an image."""
        assert self._model is not None  # asked only once __is_ready__ said so
        return {"status": "ready", **self._model.identity()}

    @bentoml.api(route="/predict")
    async def predict(self, image: ImageUpload, return_input: ReturnInput = False) -> Prediction:
        """Classify an uploaded image (multipart/form-data, field ``image``): cropped to the
        ink, scaled into 20x20 and centred by mass in 28x28, as MNIST digits were."""
        return await self.classify_upload(image.read_bytes(), return_input)

    async def classify_upload(self, data: bytes, return_input: bool = False) -> Prediction:
        """:meth:`predict` on the upload's bytes (the HTTP front calls this: no temp file)."""
        in_thread = not inputs.decodes_inline(data)  # large images: in a small thread pool
        batch = await self._model_input("image", inputs.image, data, in_thread)
        return self._predict(batch, return_input)[0]

    @bentoml.api(route="/predict_array")
    async def predict_array(
        self, pixels: PixelsInput, return_input: ReturnInput = False
    ) -> Prediction:
        """Classify one raw pixel array (used as is: not cropped or centred)."""
        batch = await self._model_input("array", inputs.one_array, pixels)
        return self._predict(batch, return_input)[0]

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self, images: BatchInput, return_input: ReturnInput = False
    ) -> BatchPrediction:
        """Classify up to MAX_BATCH raw pixel arrays in one model call."""
        batch = await self._model_input("array", inputs.arrays, images)
        return BatchPrediction(predictions=self._predict(batch, return_input))

    @bentoml.api(route="/predict_npy")
    async def predict_npy(self, array: NpyUpload, /) -> BatchPrediction:
        """Classify as many images as /predict_batch takes, sent as one .npy file (numpy.save)
        in the body: shape (N, 28, 28) or (N, 784), numbers 0..255 used as is (white ink on
        black, already MNIST-style), no pickled objects. No JSON numbers to check."""
        return await self.classify_npy(array.read_bytes())

    async def classify_npy(self, data: bytes, answer: str = "") -> BatchPrediction | Response:
        """:meth:`predict_npy` on the body (the front calls this); ``answer`` (from Accept)
        application/x-npy: an ``.npy`` answer (:func:`serving.predictions.npy_answer`)."""
        batch = await self._model_input("npy", inputs.npy, data)
        if answer != NPY_MEDIA_TYPES[0]:
            return BatchPrediction(predictions=self._predict(batch, return_input=False))
        model = self._model
        assert model is not None  # checked by _model_input
        return npy_answer(*self._answer(batch), model.version, model.precision)

    async def _model_input(
        self, source: str, step: Callable[[Any], np.ndarray], data: Any, in_thread: bool = False
    ) -> np.ndarray:
        """``step(data)`` (:mod:`serving.inputs`), timed as ``source``: the model's input, or
        the ServiceError saying why not (503 without a model; what imaging refuses)."""
        if self._model is None:
            raise ServiceError(503, str(self._load_error))
        start = time.perf_counter()
        try:
            if in_thread:
                pixels = await anyio.to_thread.run_sync(step, data, limiter=self._decoders)
            else:
                pixels = step(data)
        except INPUT_ERROR_TYPES as exc:
            raise refusal(exc) from None
        self._metrics.preprocess_seconds.labels(source=source).observe(time.perf_counter() - start)
        return pixels

    def _predict(self, batch: np.ndarray, return_input: bool) -> list[Prediction]:
        """Run the model on ``batch`` (N, 28, 28): one :class:`Prediction` per image."""
        probabilities, request_ids = self._answer(batch)
        model = self._model
        assert model is not None  # checked by _model_input
        return to_predictions(
            probabilities, batch, model.version, model.precision, return_input, request_ids
        )

    def _answer(self, batch: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The model's probabilities for ``batch``, counted and logged, and the request ids."""
        assert self._model is not None  # checked by _model_input
        probabilities = self._model.probabilities(batch)
        self._metrics.observe_predictions(probabilities)
        return probabilities, self._log.record(batch, probabilities)

    @bentoml.api(route=FEEDBACK_ROUTE)
    async def feedback(self, request_id: RequestId, digit: Digit) -> FeedbackReceipt:
        """The digit the image answered as ``request_id`` really shows (kept once per id)."""
        return await self._feedback.receive(request_id, digit)


# Declarative, like the decorators above: BentoML applies these when it builds each
# worker's app; nothing runs here but recording them.
MnistClassifier.add_asgi_middleware(RequestOrigin)  # first = outermost: route, source for the log
MnistClassifier.add_asgi_middleware(
    HeaderDeadlines,
    timeout_s=settings.HEADER_TIMEOUT_S,
    keepalive_s=settings.KEEPALIVE_S,
)
MnistClassifier.add_asgi_middleware(
    ApiFront,
    routes=(
        upload_route(MnistClassifier, "predict", MnistClassifier.inner.classify_upload),
        json_route(MnistClassifier, "predict_array"),
        json_route(MnistClassifier, "predict_batch"),
        binary_route(
            MnistClassifier,
            "predict_npy",
            MnistClassifier.inner.classify_npy,
            NPY_MEDIA_TYPES,
            answers=("application/json", NPY_MEDIA_TYPES[0]),
        ),
        json_route(MnistClassifier, "feedback"),
    ),  # fmt: skip
    limits=Limits(
        max_bytes=settings.MAX_BODY_BYTES,
        body_timeout_s=settings.BODY_TIMEOUT_S,
        max_in_flight=settings.MAX_IN_FLIGHT,
    ),
    openapi=lambda routes: openapi_document(MnistClassifier, routes),
)
# The draw-a-digit page (serving/static/), at /ui/ beside the API it calls.
MnistClassifier.mount_asgi_app(static_app(), path=UI_PATH)
