"""One training digit through the serving preprocessing, as the prepare kinds store it."""

from __future__ import annotations

import numpy as np

from mnist_mlops.imaging import ImageError, mnist_style, to_uint8

BASE = 112  # the prepare kinds redraw digits at 4x MNIST's size
INK_LEVEL = 110  # a pixel (0..255, scaled up from MNIST) this bright is part of the stroke


def as_mnist(img: np.ndarray) -> np.ndarray | None:
    """``img`` (any size, 0..255) as the service hands it to the model, as uint8 (28, 28);
    None where the preprocessing finds no ink (the caller keeps the digit as it was)."""
    try:
        return to_uint8(mnist_style(img.astype(np.float32)))
    except ImageError:
        return None
