"""Model output -> the answers the API returns (and what ``/metrics`` learns from them)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from starlette.responses import Response

from mnist_mlops import imaging
from serving.model_pair import Scored
from serving.schemas import NPY_MEDIA_TYPES, Prediction

MODEL_VERSION_HEADER = "X-Model-Version"  # the binary answer's model_version
MODEL_PRECISION_HEADER = "X-Model-Precision"  # ... and its model_precision
# The binary answer's headers, one per identity field of a JSON answer (LoadedModel.identity).
IDENTITY_HEADERS = {
    "model_version": MODEL_VERSION_HEADER,
    "model_precision": MODEL_PRECISION_HEADER,
    "model_role": "X-Model-Role",
    "model_source": "X-Model-Source",
}
# /predict_npy's binary answer (``Accept: application/x-npy``): one row per image, in the
# order sent. A structured array, so ``numpy.load`` reads it without pickle, and the ids
# travel with their rows instead of in a header that 256 ids would swell to 8 kB.
NPY_ANSWER_DTYPE = np.dtype(
    [("digit", "u1"), ("probabilities", "<f4", (10,)), ("request_id", "S32")]
)


def png_base64(pixels: np.ndarray) -> str:
    """A (28, 28) 0..255 array as base64 (no ``data:`` prefix) of an 8-bit grayscale PNG."""
    gray = imaging.to_uint8(pixels)
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def to_predictions(
    scored: Scored, request_ids: list[str], pixels: np.ndarray, return_input: bool
) -> list[Prediction]:
    """One :class:`Prediction` per row of ``scored``, each naming the model that answered
    (:meth:`serving.model_loading.LoadedModel.identity`); ``model_input`` only when asked."""
    probabilities, identity = scored.probabilities, scored.answered.identity()
    digits = probabilities.argmax(axis=1).tolist()  # whole-array calls: a batch is 256 rows
    return [
        Prediction(
            digit=digit,
            probabilities=row,
            **identity,
            request_id=request_id,
            model_input=png_base64(image) if return_input else None,
        )
        for digit, row, image, request_id in zip(
            digits, probabilities.tolist(), pixels, request_ids
        )
    ]


def npy_answer(scored: Scored, request_ids: list[str]) -> Response:
    """The same answers as :func:`to_predictions`, as an ``.npy`` of :data:`NPY_ANSWER_DTYPE`
    (which model answered in the :data:`IDENTITY_HEADERS`).

    No per-row Python objects: for a full batch this costs a fraction of the 2,560 JSON
    numbers it replaces (docs/http-api.md).
    """
    probabilities = scored.probabilities
    rows = np.empty(len(probabilities), NPY_ANSWER_DTYPE)
    rows["digit"] = probabilities.argmax(axis=1)
    rows["probabilities"] = probabilities
    rows["request_id"] = np.frombuffer("".join(request_ids).encode("ascii"), "S32")
    buffer = io.BytesIO()
    np.save(buffer, rows, allow_pickle=False)
    headers = {IDENTITY_HEADERS[k]: v for k, v in scored.answered.identity().items()}
    return Response(buffer.getvalue(), media_type=NPY_MEDIA_TYPES[0], headers=headers)
