"""Model output -> the answers the API returns (and what ``/metrics`` learns from them)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from mnist_mlops import imaging
from serving.schemas import Prediction


def png_base64(pixels: np.ndarray) -> str:
    """A (28, 28) 0..255 array as base64 (no ``data:`` prefix) of an 8-bit grayscale PNG."""
    gray = imaging.to_uint8(pixels)
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def to_predictions(
    probabilities: np.ndarray,
    pixels: np.ndarray,
    version: str,
    return_input: bool,
    request_ids: list[str],
) -> list[Prediction]:
    """One :class:`Prediction` per row; ``model_input`` only when asked for."""
    return [
        Prediction(
            digit=int(row.argmax()),
            probabilities=row.tolist(),
            model_version=version,
            request_id=request_id,
            model_input=png_base64(image) if return_input else None,
        )
        for row, image, request_id in zip(probabilities, pixels, request_ids)
    ]
