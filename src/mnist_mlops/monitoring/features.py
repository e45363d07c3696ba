"""A few numbers that say what the model saw, the same online (inference log) and offline.

Drift shows in the model's input before it shows in accuracy: a thick marker fills more
pixels with wider strokes, a photo's digit comes out fainter or off-centre. These features
are computed on the 28x28 MNIST-style input exactly as the model receives it (values
0..255, white ink on black), so the inference log and the pipeline's reference (the test
split and the field sets through the serving path) are directly comparable. numpy only:
the service calls this for every answered image.

Usage::

    from mnist_mlops.monitoring.features import FEATURES, image_features
    image_features(pixels)  # {"ink_fraction": 0.19, "stroke_width": 2.4, ...}
"""

from __future__ import annotations

import numpy as np

SIDE = 28  # the MNIST field the model reads
INK_LEVEL = 128.0  # a pixel is ink at or above half of full intensity (255)

# The feature names, in the order they are logged and reported: the one list of them.
FEATURES: tuple[str, ...] = (
    "ink_fraction",
    "stroke_width",
    "bbox_aspect",
    "com_x",
    "com_y",
    "mean_intensity",
)


def _as_batch(images: np.ndarray) -> np.ndarray:
    """(28, 28), (N, 28, 28), (784,) or (N, 784) -> float64 (N, 28, 28); else ValueError."""
    arr = np.asarray(images, dtype=np.float64)
    if arr.shape[-2:] != (SIDE, SIDE):
        if arr.shape[-1:] != (SIDE * SIDE,):
            raise ValueError(f"expected 28x28 inputs, got shape {arr.shape}")
        arr = arr.reshape(*arr.shape[:-1], SIDE, SIDE)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected 28x28 inputs, got shape {np.asarray(images).shape}")
    return arr


def batch_features(images: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature for many inputs at once (a reference over 10,000 test digits).

    With ``ink = pixels >= INK_LEVEL`` (a boolean mask of the 28x28 field):

    - ``ink_fraction``: ink pixels / 784;
    - ``stroke_width``: mean stroke width in pixels, 2 x ink area / ink perimeter (perimeter
      = 4-neighbour ink/background edges, field border included); 0 with no ink;
    - ``bbox_aspect``: width / height of the ink's bounding box (columns / rows spanned);
      0 with no ink;
    - ``com_x``, ``com_y``: intensity-weighted centre of mass, column and row, in pixels
      with pixel centres at 0..27 (MNIST centres it near 13.5-14); 13.5 for a blank input;
    - ``mean_intensity``: mean of all 784 values, 0..255.
    """
    arr = _as_batch(images)
    ink = arr >= INK_LEVEL
    area = ink.sum(axis=(1, 2)).astype(np.float64)
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
    perimeter = np.abs(np.diff(padded, axis=1)).sum(axis=(1, 2)) + np.abs(
        np.diff(padded, axis=2)
    ).sum(axis=(1, 2))
    rows_hit, cols_hit = ink.any(axis=2), ink.any(axis=1)
    height = _span(rows_hit)
    width = _span(cols_hit)
    mass = arr.sum(axis=(1, 2))
    index = np.arange(SIDE, dtype=np.float64)
    safe_mass = np.where(mass > 0, mass, 1.0)
    com_x = np.where(mass > 0, (arr.sum(axis=1) * index).sum(axis=1) / safe_mass, 13.5)
    com_y = np.where(mass > 0, (arr.sum(axis=2) * index).sum(axis=1) / safe_mass, 13.5)
    return {
        "ink_fraction": area / (SIDE * SIDE),
        "stroke_width": np.where(area > 0, 2.0 * area / np.maximum(perimeter, 1), 0.0),
        "bbox_aspect": np.where(height > 0, width / np.maximum(height, 1), 0.0),
        "com_x": com_x,
        "com_y": com_y,
        "mean_intensity": arr.mean(axis=(1, 2)),
    }


def _span(hit: np.ndarray) -> np.ndarray:
    """Rows (or columns) from the first to the last hit one, per input; 0 where none is hit."""
    first = np.argmax(hit, axis=1)
    last = hit.shape[1] - 1 - np.argmax(hit[:, ::-1], axis=1)
    return np.where(hit.any(axis=1), last - first + 1, 0).astype(np.float64)


def image_features(pixels: np.ndarray) -> dict[str, float]:
    """The FEATURES of one 28x28 input (float or uint8, 0..255), as plain floats for JSON."""
    arr = np.asarray(pixels)
    if arr.size != SIDE * SIDE:
        raise ValueError(f"expected one 28x28 input, got shape {arr.shape}")
    return {name: float(values[0]) for name, values in batch_features(arr).items()}
