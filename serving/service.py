"""The MNIST digit classifier as a BentoML service: ONNX Runtime on CPU, no torch.

Run it from the repository root: it serves the registry's champion as ``dvc repro`` leaves
it (models/champion/), follows the registry's alias (``MNIST_MODEL_URI``), or serves one file
(``MNIST_MODEL_PATH``): :mod:`serving.model_loading`::

    bentoml serve serving.service:MnistClassifier --port 3000

    curl -F image=@digit.png http://127.0.0.1:3000/predict
    curl -H 'Content-Type: application/json' -d '{"pixels": [...784 values]}' \\
        http://127.0.0.1:3000/predict_array     # /predict_batch: {"images": [[...], ...]}
    curl -H 'Content-Type: application/x-npy' --data-binary @digits.npy \\
        http://127.0.0.1:3000/predict_npy  # numpy.save of (N, 28, 28), N <= MAX_BATCH
        # add -H 'Accept: application/x-npy' for the answers as an .npy too

``return_input`` (all but /predict_npy) adds ``model_input``, a base64 PNG of what the
model saw. Each worker runs its ONNX Runtime session in the event loop (~0.1 ms an image,
less than a thread hop). The request path: :class:`serving.front.ApiFront` (added at the
end) reads and parses the body as the route table says (:data:`serving.routes.API_ROUTES`)
and calls the ``@bentoml.api`` methods below, the same ones BentoML's client and a Python
caller reach; it answers their :class:`serving.errors.ServiceError` as ``{"error": ...}``.
Settings (the environment's ``MNIST_*``): :mod:`serving.settings`.

Answers, records and ``/readyz`` name the model that answered and where it came from
(:mod:`serving.model_pair`). A model that fails its SHA-256 check does not crash the worker
(BentoML would restart it forever): ``/readyz`` and every endpoint answer 503 instead.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import bentoml
import numpy as np
from starlette.responses import Response

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.inference_log import new_request_ids
from serving import inputs, routes
from serving.connections import HeaderDeadlines
from serving.errors import INPUT_ERROR_TYPES, ServiceError, refusal
from serving.feedback import Digit, FeedbackReceipt, FeedbackRequest, RequestId
from serving.front import ApiFront, Limits
from serving.inference_logging import start_monitoring
from serving.metrics import follow_metrics, service_metrics
from serving.model_pair import Scored, ServedModels
from serving.openapi import openapi_document
from serving.predictions import npy_answer, to_predictions
from serving.schemas import (
    NPY_MEDIA_TYPES,
    ArrayRequest,
    BatchInput,
    BatchPrediction,
    BatchRequest,
    ImageUpload,
    NpyRequest,
    NpyUpload,
    PixelsInput,
    Prediction,
    UploadRequest,
)
from serving.settings import DECODE_THREADS, MAX_BODY_BYTES, UNTRACED_URLS, service_settings
from serving.ui import mount_ui

logger = logging.getLogger(__name__)
PYTHON = routes.PYTHON_SOURCE  # the log's source for a call without HTTP


try:
    SETTINGS = service_settings()  # BentoML reads the decorator's options at import
except UserError as exc:  # one line, no traceback: `bentoml serve` exits with it
    sys.exit(f"serving settings: {exc}")


@bentoml.service(
    name="mnist_classifier",
    description="Classifies handwritten digits (MNIST MLP, ONNX Runtime on CPU).",
    workers=SETTINGS.api_workers,
    traffic={"timeout": SETTINGS.request_timeout_s},  # no max_concurrency: the front counts
    tracing={"excluded_urls": UNTRACED_URLS},
)
class MnistClassifier:
    """Loads the model once; every endpoint is :meth:`_model_input` then :meth:`_predict`."""

    def __init__(self) -> None:
        self._decoders = anyio.CapacityLimiter(DECODE_THREADS)
        self._metrics = service_metrics()
        self._models = ServedModels.start(SETTINGS, follow_metrics())  # no model: 503s say why
        self._log, self._feedback = start_monitoring()  # docs/monitoring.md
        # Everything loaded so far (BentoML, pydantic, ONNX Runtime: ~230k objects) lives as
        # long as the worker; freezing it keeps each full GC pass from scanning it all again,
        # which stalled the event loop for 150-250 ms on a busy 2-core box (issue 11's p99).
        gc.collect()
        gc.freeze()

    @bentoml.on_shutdown
    def _close(self) -> None:  # stops following; writes the inference records still queued
        self._models.stop()
        self._log.close()

    async def __is_ready__(self) -> bool:
        """``/readyz``: ready once a champion is loaded and checked."""
        return self._models.pair.champion is not None

    def readiness(self) -> dict[str, Any]:
        """A ready ``/readyz``'s body (:mod:`serving.front`): which model answers, from where."""
        return self._models.readiness()

    @bentoml.api(route=routes.PREDICT.path, input_spec=UploadRequest)
    async def predict(
        self, image: ImageUpload, return_input: bool = False, source: str = PYTHON, client: str = ""
    ) -> Prediction:
        """Classify an uploaded image (multipart/form-data, field ``image``): cropped to the
        ink, scaled into 20x20 and centred by mass in 28x28, as MNIST digits were.

        The front hands ``image`` as bytes, ``source`` from the route table and ``client``
        (a canary's key) from MNIST_CANARY_KEY_HEADER; a Python caller may hand a path."""
        data = inputs.file_bytes(image)
        in_thread = not inputs.decodes_inline(data)  # large images: in a small thread pool
        batch = await self._model_input("image", inputs.image, data, in_thread)
        return self._predict(batch, return_input, (routes.PREDICT.path, source), client)[0]

    @bentoml.api(route=routes.PREDICT_ARRAY.path, input_spec=ArrayRequest)
    async def predict_array(
        self,
        pixels: PixelsInput,
        return_input: bool = False,
        source: str = PYTHON,
        client: str = "",
    ) -> Prediction:
        """Classify one raw pixel array (used as is: not cropped or centred)."""
        batch = await self._model_input("array", inputs.one_array, pixels)
        return self._predict(batch, return_input, (routes.PREDICT_ARRAY.path, source), client)[0]

    @bentoml.api(route=routes.PREDICT_BATCH.path, input_spec=BatchRequest)
    async def predict_batch(
        self, images: BatchInput, return_input: bool = False, source: str = PYTHON, client: str = ""
    ) -> BatchPrediction:
        """Classify up to MAX_BATCH raw pixel arrays in one model call."""
        batch = await self._model_input("array", inputs.arrays, images)
        origin = (routes.PREDICT_BATCH.path, source)
        return BatchPrediction(predictions=self._predict(batch, return_input, origin, client))

    @bentoml.api(route=routes.PREDICT_NPY.path, input_spec=NpyRequest, output_spec=BatchPrediction)
    async def predict_npy(
        self,
        array: NpyUpload,
        answer: str = "application/json",
        source: str = PYTHON,
        client: str = "",
    ) -> BatchPrediction | Response:
        """Classify as many images as /predict_batch takes, sent as one .npy file (numpy.save)
        in the body: shape (N, 28, 28) or (N, 784), numbers 0..255 used as is (white ink on
        black, already MNIST-style), no pickled objects. No JSON numbers to check.

        The front hands ``array`` as bytes and ``answer`` from the Accept header:
        application/x-npy is an ``.npy`` answer (:func:`serving.predictions.npy_answer`)."""
        batch = await self._model_input("npy", inputs.npy, inputs.file_bytes(array))
        origin = (routes.PREDICT_NPY.path, source)
        if answer != NPY_MEDIA_TYPES[0]:
            return BatchPrediction(predictions=self._predict(batch, False, origin, client))
        return npy_answer(*self._answer(batch, origin, client))

    async def _model_input(
        self, source: str, step: Callable[[Any], np.ndarray], data: Any, in_thread: bool = False
    ) -> np.ndarray:
        """``step(data)`` (:mod:`serving.inputs`), timed as ``source``: the model's input, or
        the ServiceError saying why not (503 without a model; what imaging refuses)."""
        if self._models.pair.champion is None:
            raise ServiceError(503, self._models.problem)
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

    def _predict(
        self, batch: np.ndarray, return_input: bool, origin: tuple[str, str], client: str
    ) -> list[Prediction]:
        """Run the model on ``batch`` (N, 28, 28): one :class:`Prediction` per image."""
        return to_predictions(*self._answer(batch, origin, client), batch, return_input)

    def _answer(
        self, batch: np.ndarray, origin: tuple[str, str], client: str
    ) -> tuple[Scored, list[str]]:
        """``batch`` scored (:meth:`ServedModels.score`), counted and logged with ``origin``
        (route, source), and the ids; a canary keys on ``client``, else on the first id."""
        request_ids = new_request_ids(len(batch))
        scored = self._models.score(batch, client or request_ids[0])
        self._metrics.observe_predictions(scored.probabilities)
        self._log.record(batch, scored, *origin, request_ids)
        return scored, request_ids

    @bentoml.api(route=routes.FEEDBACK.path, input_spec=FeedbackRequest)
    async def feedback(
        self, request_id: RequestId, digit: Digit, peer: str = "", forwarded_for: str = ""
    ) -> FeedbackReceipt:
        """The digit ``request_id``'s image really shows (kept once); the front says who sent it."""
        return await self._feedback.receive(request_id, digit, peer, forwarded_for)


# Declarative, like the decorators above: BentoML applies these when it builds each
# worker's app; nothing runs here but recording them.
MnistClassifier.add_asgi_middleware(
    HeaderDeadlines, timeout_s=SETTINGS.header_timeout_s, keepalive_s=SETTINGS.keepalive_s
)
MnistClassifier.add_asgi_middleware(
    ApiFront,
    routes=routes.front_routes(MnistClassifier, client_header=SETTINGS.canary_key_header),
    limits=Limits(
        max_bytes=MAX_BODY_BYTES,
        body_timeout_s=SETTINGS.body_timeout_s,
        max_in_flight=SETTINGS.max_in_flight,
    ),
    openapi=lambda front_routes: openapi_document(MnistClassifier, front_routes),
)
# The draw-a-digit page (serving/static/), at /ui/ beside the API it calls.
mount_ui(MnistClassifier)
