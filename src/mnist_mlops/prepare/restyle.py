"""Training digits restyled the way the service hands digits to the model.

Each prepare kind redraws a training digit (a thicker stroke, a flag, a small scan...) and
then runs it through the serving preprocessing, so what the model trains on looks like what
it is served; these are the pieces the kinds share.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnist_mlops.imaging import ImageError, mnist_style, to_uint8

BASE = 112  # the prepare kinds redraw digits at 4x MNIST's size
INK_LEVEL = 110  # a pixel (0..255, scaled up from MNIST) this bright is part of the stroke

# A redraw of one MNIST digit (uint8 28x28) at any size, or None to keep the digit as it was.
Draw = Callable[[np.ndarray, np.random.Generator], "np.ndarray | None"]


def as_mnist(img: np.ndarray) -> np.ndarray | None:
    """``img`` (any size, 0..255) as the service hands it to the model, as uint8 (28, 28);
    None where the preprocessing finds no ink (the caller keeps the digit as it was)."""
    try:
        return to_uint8(mnist_style(img.astype(np.float32)))
    except ImageError:
        return None


def redraw_chunk(job: tuple[np.ndarray, int], draw: Draw) -> np.ndarray:
    """Each digit of ``job``'s chunk redrawn by ``draw``, then preprocessed.

    One generator per chunk, seeded by the job, is drawn from digit by digit: a chunk
    comes out the same in whichever worker runs it. A digit ``draw`` skips, or the
    preprocessing refuses, stays as it was, so the kind keeps one image per digit.
    """
    chunk, seed = job
    rng = np.random.default_rng(seed)
    out = chunk.copy()
    for i, img in enumerate(chunk):
        drawn = draw(img, rng)
        done = None if drawn is None else as_mnist(drawn)
        if done is not None:
            out[i] = done
    return out
