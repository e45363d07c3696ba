"""Request and response shapes: BentoML builds the OpenAPI document and validation from these.

The JSON pixel schema mirrors what :func:`mnist_mlops.imaging.pixels_from_array`
accepts (it re-checks everything); :class:`ErrorBody` is the one error shape every
4xx/5xx answer has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from bentoml.validators import ContentType
from pydantic import BaseModel, Field

from mnist_mlops import imaging
from mnist_mlops.inference.model_card import PRECISIONS
from mnist_mlops.monitoring.records import ROLES

MAX_BATCH = 256  # images per /predict_batch or /predict_npy request: bounds one call
# /predict_npy's body: the first is what the OpenAPI document and BentoML's client say.
NPY_MEDIA_TYPES = ("application/x-npy", "application/octet-stream")

Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]
Pixels = (
    Annotated[
        list[Annotated[list[Pixel], Field(min_length=28, max_length=28)]],
        Field(min_length=28, max_length=28),
    ]
    | Annotated[list[Pixel], Field(min_length=784, max_length=784)]
)


def example_pixels() -> list[list[int]]:
    """A vertical stroke, roughly an MNIST "1": the example in the API docs and the tests."""
    return [[255 if 5 <= r < 23 and 13 <= c < 16 else 0 for c in range(28)] for r in range(28)]


ImageUpload = Annotated[
    Path,
    Field(
        description=f"{imaging.ACCEPTED} (first frame); up to "
        f"{imaging.MAX_PIXELS:,} pixels and {imaging.MAX_BYTES:,} bytes; "
        "dark-on-light or light-on-dark"
    ),
]
PixelsInput = Annotated[
    Pixels,
    Field(
        description="28x28 nested or 784 flat numbers in 0..255, white ink on black, "
        "already MNIST-style (used as is: not cropped or centred)",
        examples=[example_pixels()],
    ),
]
BatchInput = Annotated[
    list[Pixels],
    Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1..{MAX_BATCH} pixel arrays, each as for /predict_array",
        examples=[[example_pixels()]],
    ),
]
NpyUpload = Annotated[Path, ContentType(NPY_MEDIA_TYPES[0])]
ReturnInput = Annotated[
    bool,
    Field(
        strict=True,  # JSON true/false only: 0 or "yes" is a 400, not silently False
        description="also answer, per image, `model_input`: the 28x28 array the model was "
        "given, as a base64 PNG",
    ),
]


class UploadRequest(BaseModel):
    """/predict's form (the method's ``source`` is not an input: the front sets it)."""

    image: ImageUpload
    return_input: ReturnInput = False


class ArrayRequest(BaseModel):
    """/predict_array's JSON body."""

    pixels: PixelsInput
    return_input: ReturnInput = False


class BatchRequest(BaseModel):
    """/predict_batch's JSON body."""

    images: BatchInput
    return_input: ReturnInput = False


class NpyRequest(BaseModel):
    """/predict_npy's file, as BentoML's client sends it (a form); the raw body is the same
    file (serving.routes reads both)."""

    array: NpyUpload


class Prediction(BaseModel):
    """One image's answer."""

    digit: int = Field(ge=0, le=9, description="the most probable digit")
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="softmax over digits 0..9; sums to 1"
    )
    model_version: str = Field(description="first 12 hex digits of the model's SHA-256")
    model_precision: str = Field(
        pattern=f"^({'|'.join(PRECISIONS)})$",
        description="what the answering model computes in, as its card says: int8 (the "
        "quantized artifact the gate chose) or float32",
    )
    model_role: str = Field(
        pattern=f"^({'|'.join(ROLES)})$",
        description="which of the registry's aliases answered: the champion, or in a canary "
        "the challenger (MNIST_CHALLENGER=canary)",
    )
    model_source: str = Field(
        description="where the answering model came from: the registry alias and version "
        "it follows (models:/mnist-mlp@champion v3) or the file it was loaded from",
    )
    request_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="this answer's id in the inference log: send it to POST /feedback "
        "with the right digit if the answer was wrong",
    )
    model_input: str | None = Field(
        default=None,  # left out of the JSON answer (never null): see serving.front
        description="only with return_input=true: base64 (no data: prefix) of a 28x28 8-bit "
        "grayscale PNG of exactly what the model was given (white digit on black, "
        "before normalisation)",
    )


class BatchPrediction(BaseModel):
    """Answers in the order the images were sent."""

    predictions: list[Prediction]


class ErrorBody(BaseModel):
    """Every error answer: one human-readable line naming the problem and the fix."""

    error: str = Field(examples=["the request body is over the limit of 3145728 bytes"])
