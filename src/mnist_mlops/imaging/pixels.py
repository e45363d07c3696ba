"""Raw pixel arrays, taken as already MNIST-style, and the 0..255 float -> uint8 rounding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mnist_mlops.imaging.errors import ImageError
from mnist_mlops.imaging.stroke import SIZE


def to_uint8(values: np.ndarray) -> np.ndarray:
    """0..255 floats -> uint8, rounded and clipped (what a PNG of the array would hold).

    Rounds and clips in one temporary (the inference log's writer converts every answered
    image: two fewer passes over the floats).
    """
    out = np.rint(values)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def pixels_from_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate a raw pixel array (28x28 nested or 784 flat, numbers 0..255) -> float32 (28, 28).

    The values are taken as already MNIST-style (white ink on black, centred):
    nothing is cropped, moved or inverted.
    """
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged nesting
        raise ImageError(
            f"pixels must be a 28x28 nested list or 784 numbers; got a ragged array ({exc})"
        ) from exc
    if arr.dtype.kind not in "iuf":
        raise ImageError(
            f"pixels must all be numbers in 0..255; got values of type {arr.dtype.name!r}"
        )
    if arr.shape not in ((SIZE, SIZE), (SIZE * SIZE,)):
        raise ImageError(
            f"pixels must be a 28x28 nested list or 784 numbers; got shape {arr.shape}"
        )
    arr = arr.astype(np.float64)  # check range before float32 could turn 1e300 into inf
    if not np.isfinite(arr).all():
        raise ImageError("pixels must be finite numbers; got NaN or infinity")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 255.0:
        raise ImageError(f"pixels must be in 0..255; got values from {low:g} to {high:g}")
    return arr.astype(np.float32).reshape(SIZE, SIZE)
