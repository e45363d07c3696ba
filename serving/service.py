"""The MNIST digit classifier as a BentoML service: ONNX Runtime on CPU, no torch.

Run it from the repository root (the model and its metadata come from the
pipeline's export stage)::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve serving.service:MnistClassifier --port 3000

    curl -F image=@digit.png http://127.0.0.1:3000/predict
    curl -H 'Content-Type: application/json' -d '{"pixels": [0, 0, ...784 values]}' \\
        http://127.0.0.1:3000/predict_array
    curl -H 'Content-Type: application/json' -d '{"images": [[...], [...]]}' \\
        http://127.0.0.1:3000/predict_batch

``bentoml serve`` starts :class:`MnistClassifier` (HTTP, decoding, preprocessing).
By default it runs the ONNX Runtime session itself. With ``MNIST_BATCHING=on`` the
session moves to :class:`MnistModel`, in its own worker process behind one adaptively
batched API, and the two talk HTTP over a Unix socket. On a 2-core box the in-process
default measured 2-8x the throughput for JSON arrays and 0.9-2x for PNG uploads at
concurrency 1-64 (bench/serve_load.py: the MLP needs ~0.1 ms per image, the hop
several ms, so batching has little to amortise), and it finishes requests in flight
on SIGTERM; batching is for larger models or machines. Settings, read from the
environment when the module is imported (so every worker process sees the same):

    MNIST_MODEL_PATH       the exported model.onnx (model.json beside it)
    MNIST_BATCHING         "off" (default): the ONNX Runtime session runs inside each
                           API worker, one call per request (no second process, no hop);
                           "on": the model runs in its own worker process, behind
                           BentoML's adaptive batching
    MNIST_MAX_LATENCY_MS   batching latency budget (default 5000); with batching on, a
                           request that queued longer than this is answered 503
    MNIST_MAX_CONCURRENCY  requests in flight per API worker before a 429 (default 128)
    MNIST_API_WORKERS      API worker processes (default 1, for a 2-core box that also
                           runs its clients; each worker holds its own session)

Every answer carries ``model_version`` (the first 12 hex digits of the model
file's SHA-256), checked against the metadata at startup so a half-copied or
swapped model file makes ``/readyz`` (and every endpoint) answer 503 instead of
serving wrong answers.

Bad input is the client's fault, so it is answered with a 4xx and a JSON body
``{"error": "..."}``, never a 500: 400 malformed, 413 too large (body over
MAX_BODY_BYTES, or too many pixels), 415 not multipart / unsupported image
format / pickle, 422 a valid image with no digit in it, 429 over the concurrency
limit. Three layers do this: :class:`RequestGuard` (size, content type and
multipart form, before BentoML parses the body), BentoML's pydantic validation of
JSON bodies (400 with ``"error"`` and ``"detail"``), and :func:`_client_errors` for
what only decoding can tell.

BentoML 1.4 gotchas this layout works around:

* It batches only HTTP calls that arrive at a ``batchable`` API; a call from another
  method of the same service goes straight through. Hence two services.
* A sync API method runs in a thread pool of ``threads`` (default **1**) threads, so
  sync endpoints that wait on a dependency serialise every request and nothing is
  ever batched. The HTTP endpoints here are ``async``; image decoding goes to a
  thread so a large upload does not stall the event loop.
* ``bentoml.depends`` talks to a local dependency with *pickle*; :class:`JSONDependency`
  makes it JSON, and :class:`RequestGuard` refuses pickle bodies on both services.
* The dependency client recycles its connection pool every 100 requests and closes
  the old pool with requests still in flight on it (500s under load), so
  ``runner_connection`` is raised far above any test or benchmark.
* The batching dispatcher answers 503 when the oldest queued request has waited longer
  than ``max_latency_ms`` (default 60 s): that is the load-shedding knob.
* A raised ``InvalidArgument`` becomes a JSON *list* ``[{"error": ...}]``
  (bentoml/BentoML#4232), so endpoints return the error response instead.
* ``traffic.max_concurrency`` answers 429 ``{"error": "Too many requests"}`` beyond
  the limit (per worker: the limit is divided by the worker count).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
import attrs
import bentoml
import numpy as np
import onnxruntime as ort
from _bentoml_impl.client import RemoteProxy
from _bentoml_sdk.service.dependency import Dependency
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_mlops import imaging
from mnist_mlops.errors import UserError
from mnist_mlops.fileio import read_json, sha256_file
from mnist_mlops.inference import inference_session, softmax
from mnist_mlops.packaging import resolve_model_path
from serving.ui import UI_PATH, static_app

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = "models/model.onnx"
BATCHING = os.environ.get("MNIST_BATCHING", "off").lower() in ("on", "1", "true", "yes")
MAX_LATENCY_MS = int(os.environ.get("MNIST_MAX_LATENCY_MS", "5000"))
MAX_CONCURRENCY = int(os.environ.get("MNIST_MAX_CONCURRENCY", "128"))
API_WORKERS = int(os.environ.get("MNIST_API_WORKERS", "1"))
PICKLE_MEDIA_TYPE = "application/vnd.bentoml+pickle"
READY_TIMEOUT_S = 2.0  # /readyz asks the model worker for its version within this
MAX_BATCH = 256  # images per /predict_batch request: bounds the memory and time of one call
# Any request body. Fits the largest upload (imaging.MAX_BYTES plus multipart framing) and
# a full batch of JSON pixels (256 x 784 numbers is about 3 MB even with long decimals).
MAX_BODY_BYTES = imaging.MAX_BYTES + 1024 * 1024

# What the client did wrong -> HTTP status. Checked in order, so subclasses come first.
_STATUS: tuple[tuple[type[imaging.ImageError], int], ...] = (
    (imaging.ImageTooLargeError, 413),
    (imaging.UnsupportedFormatError, 415),
    (imaging.NoInkError, 422),
    (imaging.ImageError, 400),
)


class ModelLoadError(UserError):
    """The model file or its metadata is missing, or they do not belong together."""


# A JSON pixel array, as the schema shows it in the OpenAPI docs; imaging re-checks it.
Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]
Pixels = (
    Annotated[
        list[Annotated[list[Pixel], Field(min_length=28, max_length=28)]],
        Field(min_length=28, max_length=28),
    ]
    | Annotated[list[Pixel], Field(min_length=784, max_length=784)]
)


def _example_pixels() -> list[list[int]]:
    """A vertical stroke, roughly an MNIST "1": the example in the API docs."""
    return [[255 if 5 <= r < 23 and 13 <= c < 16 else 0 for c in range(28)] for r in range(28)]


EXAMPLE_PIXELS = _example_pixels()

# Parameter types: BentoML builds each endpoint's input schema (and docs) from these.
ImageUpload = Annotated[
    Path,
    Field(
        description="PNG, JPEG, BMP or GIF (first frame); up to "
        f"{imaging.MAX_PIXELS:,} pixels and {imaging.MAX_BYTES:,} bytes; "
        "dark-on-light or light-on-dark"
    ),
]
PixelsInput = Annotated[
    Pixels,
    Field(
        description="28x28 nested or 784 flat numbers in 0..255, white ink on black, "
        "already MNIST-style (used as is: not cropped or centred)",
        examples=[EXAMPLE_PIXELS],
    ),
]
BatchInput = Annotated[
    list[Pixels],
    Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1..{MAX_BATCH} pixel arrays, each as for /predict_array",
        examples=[[EXAMPLE_PIXELS]],
    ),
]


class Prediction(BaseModel):
    """One image's answer."""

    digit: int = Field(ge=0, le=9, description="the most probable digit")
    probabilities: list[float] = Field(description="softmax over digits 0..9; sums to 1")
    model_version: str = Field(description="first 12 hex digits of the model's SHA-256")


class BatchPrediction(BaseModel):
    """Answers in the order the images were sent."""

    predictions: list[Prediction]


@dataclass(frozen=True)
class LoadedModel:
    """An ONNX Runtime session plus what the metadata says about it."""

    session: ort.InferenceSession
    input_name: str
    output_name: str
    version: str

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28) raw pixels -> float64 (N, 10) softmax probabilities."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 28, 28)
        (logits,) = self.session.run([self.output_name], {self.input_name: batch})
        return softmax(logits)


def load_configured_model() -> tuple[str, LoadedModel]:
    """The model the environment points at (see :func:`resolve_model_path`), checked."""
    path = str(resolve_model_path(DEFAULT_MODEL_PATH))
    return path, load_model(path)


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Open ``path`` after checking its SHA-256 against ``model.json`` beside it."""
    model_path = Path(path)
    meta_path = model_path.with_name("model.json")
    for needed in (model_path, meta_path):
        if not needed.is_file():
            raise ModelLoadError(
                f"{needed} not found; run `dvc repro export` or set MNIST_MODEL_PATH "
                "to an exported model.onnx (with model.json beside it)"
            )
    meta = read_json(meta_path)
    actual = sha256_file(model_path)
    if actual != meta.get("sha256"):
        raise ModelLoadError(
            f"{model_path} has SHA-256 {actual} but {meta_path} expects {meta.get('sha256')}; "
            "the model and its metadata come from different exports: re-run the export stage"
        )
    return LoadedModel(
        session=inference_session(model_path),
        input_name=meta.get("input", "pixels"),
        output_name=meta.get("output", "logits"),
        version=meta.get("version", actual[:12]),
    )


S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


def _client_errors(
    func: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Awaitable[R | JSONResponse]]:
    """Answer the client's mistakes (:class:`~mnist_mlops.imaging.ImageError`) with a 4xx.

    BentoML passes a returned starlette ``Response`` through untouched; functools.wraps
    keeps the signature and annotations BentoML reads to build the input schema.
    """

    @functools.wraps(func)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R | JSONResponse:
        try:
            return await func(self, *args, **kwargs)
        except imaging.ImageError as exc:
            status = next(code for cls, code in _STATUS if isinstance(exc, cls))
            return JSONResponse({"error": str(exc)}, status_code=status)
        except ModelLoadError as exc:  # in-process model failed its checks: not ready
            return JSONResponse({"error": f"model not loaded: {exc}"}, status_code=503)

    return wrapper


class RequestGuard:
    """ASGI middleware that answers oversized and malformed requests with a JSON 4xx.

    BentoML 1.4 parses the body before an endpoint runs and has no size limit. For a
    file parameter it also answers 500 to a malformed multipart body, to an extra
    binary field (it tries to read every non-file field as JSON), and to a *text*
    field where the file should be (it tries to download it as a URL). So this guard
    reads the body once, bounded by ``max_bytes``, checks the upload form, and replays
    the body to BentoML. It also refuses BentoML's pickle media type outright, so no
    request body is ever unpickled (BentoML would do so on a dependency service).
    """

    def __init__(self, app: ASGIApp, upload_routes: tuple[str, ...], max_bytes: int) -> None:
        self.app = app
        self.upload_routes = upload_routes
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").split(";")[0].strip().lower() == PICKLE_MEDIA_TYPE:
            await _reject(scope, receive, send, 415, "pickle bodies are not accepted; send JSON")
            return
        declared = headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await _reject(scope, receive, send, 413, self._too_large)
            return
        is_upload = scope["path"] in self.upload_routes
        if is_upload and not headers.get("content-type", "").startswith("multipart/form-data"):
            message = "send the image as multipart/form-data with a file field named 'image'"
            await _reject(scope, receive, send, 415, message)
            return
        body = await _read_body(receive, self.max_bytes)
        if body is None:  # a chunked body that outgrew the limit
            await _reject(scope, receive, send, 413, self._too_large)
            return
        if is_upload and (problem := await _check_upload_form(scope, body)):
            await _reject(scope, receive, send, 400, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    @property
    def _too_large(self) -> str:
        return f"the request body is over the limit of {self.max_bytes} bytes"


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # client went away
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as usual

    return replay


async def _check_upload_form(scope: Scope, body: bytes) -> str | None:
    """None if the form holds exactly one file field, ``image``; else what is wrong."""
    request = Request(scope, receive=_replay(body, _no_more))
    try:
        form = await request.form(max_files=1, max_fields=1)
    except Exception as exc:  # starlette raises several types for broken multipart
        return f"malformed multipart/form-data body: {getattr(exc, 'detail', exc)}"
    try:
        if list(form.keys()) != ["image"]:
            return f"the form must hold one field, 'image'; got {sorted(form.keys())}"
        if not isinstance(form["image"], UploadFile):
            return "the 'image' field must be a file upload (curl -F image=@digit.png), not text"
        return None
    finally:
        await form.close()


async def _no_more() -> Message:
    return {"type": "http.disconnect"}


async def _reject(scope: Scope, receive: Receive, send: Send, status: int, error: str) -> None:
    await JSONResponse({"error": error}, status_code=status)(scope, receive, send)


@attrs.define
class JSONDependency(Dependency[Any]):
    """``bentoml.depends`` that talks JSON to a local dependency, never pickle."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        resolved = super().get(*args, **kwargs)
        if isinstance(resolved, RemoteProxy):  # served: rebuild the client with JSON
            resolved = RemoteProxy(self.url, service=self.on, media_type="application/json")
        return resolved


@bentoml.service(
    name="mnist_model",
    description="The ONNX Runtime session behind one adaptively batched API.",
    workers=1,  # one session; batching, not processes, is what scales a tiny MLP
    traffic={"timeout": 30},
    # The client in MnistClassifier would otherwise recycle its pool every 100 requests,
    # closing connections that still carry requests (see the module docstring).
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
)
class MnistModel:
    """Loads the model once; :meth:`probabilities` is what BentoML batches."""

    def __init__(self) -> None:
        path, self.model = load_configured_model()
        logger.info("Loaded %s (version %s, batching %s)", path, self.model.version, BATCHING)

    @bentoml.api(
        batchable=BATCHING,
        batch_dim=0,
        max_batch_size=MAX_BATCH,
        max_latency_ms=MAX_LATENCY_MS,
    )
    async def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28) raw pixels -> float64 (N, 10) softmax probabilities.

        ``async`` so ONNX Runtime runs on the event loop: the MLP takes about 0.1 ms
        for one image and 1 ms for 64, less than a hop to a thread pool would cost.
        """
        return self.model.probabilities(pixels)

    @bentoml.api
    async def version(self) -> str:
        """The loaded model's version (first 12 hex digits of its SHA-256)."""
        return self.model.version


@bentoml.service(
    name="mnist_classifier",
    description="Classifies handwritten digits (MNIST MLP, ONNX Runtime on CPU).",
    workers=API_WORKERS,
    traffic={"timeout": 30, "max_concurrency": MAX_CONCURRENCY},
)
class MnistClassifier:
    """Decodes and preprocesses; every endpoint funnels into :meth:`classify`."""

    # Batching on: the model is a separate, batched service. Off: no second process at all;
    # the session lives in this one (see MNIST_BATCHING in the module docstring).
    model = JSONDependency(MnistModel) if BATCHING else None

    def __init__(self) -> None:
        self._version: str | None = None
        self._local: LoadedModel | None = None
        self._load_error: ModelLoadError | None = None
        if self.model is None:
            # A bad model must not crash the worker: BentoML would restart it forever
            # while clients time out. Stay up; /readyz and the endpoints answer 503.
            try:
                path, self._local = load_configured_model()
            except Exception as exc:  # checksum, missing file, or ONNX Runtime refusing it
                self._load_error = ModelLoadError(str(exc))
                logger.error("ModelLoadError: %s", exc)
            else:
                self._version = self._local.version
                logger.info("Loaded %s in process (version %s)", path, self._version)

    async def model_version(self) -> str:
        if self._version is None:  # asked once: the model worker's answer cannot change
            self._version = await self.model.version()
        return self._version

    async def __is_ready__(self) -> bool:
        """``/readyz``: ready once the model (here or in its worker) is loaded and checked."""
        if self.model is None:
            return self._local is not None
        try:  # bounded: a model worker that keeps crashing must not hang the probe
            await asyncio.wait_for(self.model_version(), READY_TIMEOUT_S)
        except Exception:
            logger.warning("The model service is not ready", exc_info=True)
            return False
        return True

    async def classify(self, batch: np.ndarray) -> list[Prediction]:
        """float32 (N, 28, 28) raw pixels -> one :class:`Prediction` per image."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._load_error is not None:
            raise self._load_error
        if self._local is not None:  # about 0.1 ms per image: cheaper inline than a thread hop
            probs = self._local.probabilities(batch)
        else:
            probs = await self.model.probabilities(batch)
        version = await self.model_version()
        return [
            Prediction(digit=int(row.argmax()), probabilities=row.tolist(), model_version=version)
            for row in np.asarray(probs)
        ]

    @bentoml.api(route="/predict")
    @_client_errors
    async def predict(self, image: ImageUpload) -> Prediction:
        """Classify an uploaded image (multipart/form-data, field ``image``).

        The image is cropped to the ink, scaled into 20x20 and centred by mass in 28x28,
        as MNIST digits were.
        """
        size = image.stat().st_size
        if size > imaging.MAX_BYTES:  # refuse before reading it into memory
            raise imaging.ImageTooLargeError(
                f"the upload is {size} bytes; the limit is {imaging.MAX_BYTES} bytes"
            )
        pixels = await anyio.to_thread.run_sync(_preprocess_file, image)
        return (await self.classify(pixels[None]))[0]

    @bentoml.api(route="/predict_array")
    @_client_errors
    async def predict_array(self, pixels: PixelsInput) -> Prediction:
        """Classify one raw pixel array."""
        return (await self.classify(imaging.pixels_from_array(pixels)[None]))[0]

    @bentoml.api(route="/predict_batch")
    @_client_errors
    async def predict_batch(self, images: BatchInput) -> BatchPrediction:
        """Classify up to MAX_BATCH raw pixel arrays in one model call."""
        batch = np.stack([imaging.pixels_from_array(p) for p in images])
        return BatchPrediction(predictions=await self.classify(batch))


def _preprocess_file(path: Path) -> np.ndarray:
    return imaging.preprocess_image(path.read_bytes())


# Declarative, like the decorators above: wraps the ASGI apps only when BentoML builds them.
MnistClassifier.add_asgi_middleware(
    RequestGuard,
    upload_routes=(MnistClassifier.apis["predict"].route,),
    max_bytes=MAX_BODY_BYTES,
)
MnistModel.add_asgi_middleware(RequestGuard, upload_routes=(), max_bytes=MAX_BODY_BYTES)
# The draw-a-digit page (serving/static/), at /ui/ beside the API it calls.
MnistClassifier.mount_asgi_app(static_app(), path=UI_PATH)
