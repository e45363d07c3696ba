"""The MNIST digit classifier as one BentoML service: ONNX Runtime on CPU, no torch.

Run it from the repository root (the model and its metadata come from the
pipeline's export stage)::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve serving.service:MnistClassifier --port 3000

    curl -F image=@digit.png http://127.0.0.1:3000/predict
    curl -H 'Content-Type: application/json' -d '{"pixels": [0, 0, ...784 values]}' \\
        http://127.0.0.1:3000/predict_array
    curl -H 'Content-Type: application/json' -d '{"images": [[...], [...]]}' \\
        http://127.0.0.1:3000/predict_batch

Every answer carries ``model_version`` (the first 12 hex digits of the model
file's SHA-256), checked against the metadata at startup so a half-copied or
swapped model file stops the server instead of serving wrong answers.

Bad input is the client's fault, so it is answered with a 4xx and a JSON body
``{"error": "..."}``, never a 500: 400 malformed, 413 too large (body over
MAX_BODY_BYTES, or too many pixels), 415 not multipart / unsupported image
format, 422 a valid image with no digit in it. Three layers do this:
:class:`RequestGuard` (size and multipart form, before BentoML parses the body),
BentoML's pydantic validation of JSON bodies (400 with ``"error"`` and
``"detail"``), and :func:`_client_errors` for what only decoding can tell.
(BentoML 1.4 turns a raised ``InvalidArgument`` into a JSON *list*
``[{"error": ...}]``, bentoml/BentoML#4232, so endpoints return the response.)
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Concatenate, ParamSpec, TypeVar

import bentoml
import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_mlops import imaging
from mnist_mlops.errors import UserError
from mnist_mlops.fileio import read_json, sha256_file
from mnist_mlops.inference import inference_session, softmax

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = "models/model.onnx"
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
    func: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R | JSONResponse]:
    """Answer the client's mistakes (:class:`~mnist_mlops.imaging.ImageError`) with a 4xx.

    BentoML passes a returned starlette ``Response`` through untouched; functools.wraps
    keeps the signature and annotations BentoML reads to build the input schema.
    """

    @functools.wraps(func)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R | JSONResponse:
        try:
            return func(self, *args, **kwargs)
        except imaging.ImageError as exc:
            status = next(code for cls, code in _STATUS if isinstance(exc, cls))
            return JSONResponse({"error": str(exc)}, status_code=status)

    return wrapper


class RequestGuard:
    """ASGI middleware that answers oversized and malformed requests with a JSON 4xx.

    BentoML 1.4 parses the body before an endpoint runs and has no size limit. For a
    file parameter it also answers 500 to a malformed multipart body, to an extra
    binary field (it tries to read every non-file field as JSON), and to a *text*
    field where the file should be (it tries to download it as a URL). So this guard
    reads the body once, bounded by ``max_bytes``, checks the upload form, and replays
    the body to BentoML.
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


@bentoml.service(
    name="mnist_classifier",
    description="Classifies handwritten digits (MNIST MLP, ONNX Runtime on CPU).",
    traffic={"timeout": 30},
)
class MnistClassifier:
    """Loads the model once per worker; every endpoint funnels into :meth:`classify`."""

    def __init__(self) -> None:
        path = os.environ.get("MNIST_MODEL_PATH", DEFAULT_MODEL_PATH)
        self.model = load_model(path)
        logger.info("Loaded %s (version %s)", path, self.model.version)

    def classify(self, batch: np.ndarray) -> list[Prediction]:
        """float32 (N, 28, 28) raw pixels -> one :class:`Prediction` per image.

        A plain method, not a ``batchable`` API: BentoML 1.4 batches only requests that
        arrive over HTTP at the batchable endpoint itself (calls from another endpoint of
        the same service go straight through), and the MLP takes microseconds per image.
        """
        feed = {self.model.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        (logits,) = self.model.session.run([self.model.output_name], feed)
        probs = softmax(logits)
        return [
            Prediction(
                digit=int(row.argmax()),
                probabilities=row.tolist(),
                model_version=self.model.version,
            )
            for row in probs
        ]

    @bentoml.api(route="/predict")
    @_client_errors
    def predict(self, image: ImageUpload) -> Prediction:
        """Classify an uploaded image (multipart/form-data, field ``image``).

        The image is cropped to the ink, scaled into 20x20 and centred by mass in 28x28,
        as MNIST digits were.
        """
        size = image.stat().st_size
        if size > imaging.MAX_BYTES:  # refuse before reading it into memory
            raise imaging.ImageTooLargeError(
                f"the upload is {size} bytes; the limit is {imaging.MAX_BYTES} bytes"
            )
        pixels = imaging.preprocess_image(image.read_bytes())
        return self.classify(pixels[None])[0]

    @bentoml.api(route="/predict_array")
    @_client_errors
    def predict_array(self, pixels: PixelsInput) -> Prediction:
        """Classify one raw pixel array."""
        return self.classify(imaging.pixels_from_array(pixels)[None])[0]

    @bentoml.api(route="/predict_batch")
    @_client_errors
    def predict_batch(self, images: BatchInput) -> BatchPrediction:
        """Classify up to MAX_BATCH raw pixel arrays in one model call."""
        batch = np.stack([imaging.pixels_from_array(p) for p in images])
        return BatchPrediction(predictions=self.classify(batch))


# Declarative, like the decorators above: wraps the ASGI app only when BentoML builds it.
MnistClassifier.add_asgi_middleware(
    RequestGuard,
    upload_routes=(MnistClassifier.apis["predict"].route,),
    max_bytes=MAX_BODY_BYTES,
)
