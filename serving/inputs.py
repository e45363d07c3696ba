"""Request data -> the model's input: a float32 (N, 28, 28) batch of 0..255 pixels.

One function per kind of body, each raising what the library behind it refuses
(:class:`mnist_mlops.imaging.ImageError`, :class:`mnist_mlops.inference.arrays.ArrayFormatError`);
the service times them and maps the errors.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnist_mlops import imaging
from mnist_mlops.inference.arrays import parse_npy
from serving.schemas import MAX_BATCH

# Images up to this many pixels (the /ui canvas is 280x280) decode in the event loop:
# about 1 ms, cheaper than the hop to a thread and back (bench/serve_load.py, PNG rows).
INLINE_DECODE_PIXELS = 320 * 320


def file_bytes(value: bytes | str | os.PathLike[str]) -> bytes:
    """A file input's bytes: the front hands what it read; a Python caller may hand a path."""
    return value if isinstance(value, bytes) else Path(value).read_bytes()


def image(data: bytes) -> np.ndarray:
    """An encoded image, found, cropped and centred as MNIST digits were: (1, 28, 28)."""
    return imaging.preprocess_image(data)[None]


def one_array(pixels: Any) -> np.ndarray:
    """One raw pixel array (28x28 nested or 784 flat), used as is: (1, 28, 28)."""
    return imaging.pixels_from_array(pixels)[None]


def arrays(images: list[Any]) -> np.ndarray:
    """Raw pixel arrays, each as for :func:`one_array`: (N, 28, 28)."""
    return np.stack([imaging.pixels_from_array(p) for p in images])


def npy(data: bytes) -> np.ndarray:
    """An .npy file of up to MAX_BATCH raw pixel arrays, used as is: (N, 28, 28)."""
    return parse_npy(data, MAX_BATCH)


def decodes_inline(data: bytes) -> bool:
    """Whether ``data`` is a small enough image to decode in the event loop.

    Reads the pixel count from the header only; anything unreadable goes to the thread
    pool, where imaging says what is wrong with it.
    """
    try:
        with Image.open(io.BytesIO(data), formats=list(imaging.FORMATS)) as img:
            return img.width * img.height <= INLINE_DECODE_PIXELS
    except Exception:
        return False
