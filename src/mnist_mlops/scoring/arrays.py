"""Validate raw pixel arrays (``.npy`` files, read in blocks) before they reach the model.

The model takes float32 (N, 28, 28) pixels on a 0..255 scale. An array that is
the wrong shape, a dtype that is not a plain number, or holds NaN, infinity or
values outside 0..255 would still run through ONNX Runtime and give confident
nonsense, so it is refused with a one-line message that names the problem.

The header is read and checked before any data is touched, and pickled
(object) arrays are never loaded: a ``.npy`` from a stranger cannot run code or
make us allocate more than its actual size. An uploaded body, small and in memory, goes
through :func:`mnist_mlops.inference.arrays.parse_npy` instead.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from mnist_mlops.core.errors import DataFormatError

SIDE = 28
PIXEL_MAX = 255.0
NUMBER_KINDS = "uif"  # unsigned, signed, float: what a pixel may be stored as


class ArrayInputError(DataFormatError):
    """A pixel array that cannot be scored; the message says which problem it has."""


def read_npy_header(handle: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of the ``.npy`` stream at ``handle``, checked as pixels."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, SyntaxError) as exc:
        raise ArrayInputError(f"{name}: not a .npy array ({exc}); save it with numpy.save") from exc
    if dtype.hasobject or dtype.kind not in NUMBER_KINDS or dtype.fields is not None:
        raise ArrayInputError(
            f"{name}: dtype {dtype} is not a number type; "
            "save the pixels as uint8 or float32 (0..255)"
        )
    if fortran and len(shape) > 1:
        raise ArrayInputError(f"{name}: Fortran-ordered array; save a C-ordered copy")
    return tuple(shape), dtype, handle.tell()


def image_count(shape: tuple[int, ...], name: str) -> int:
    """N for an (N, 28, 28) or (N, 784) pixel array, else :class:`ArrayInputError`."""
    if len(shape) == 3 and shape[1:] == (SIDE, SIDE) or len(shape) == 2 and shape[1] == SIDE**2:
        if shape[0] == 0:
            raise ArrayInputError(f"{name}: the array holds no images (shape {shape})")
        return int(shape[0])
    raise ArrayInputError(
        f"{name}: shape {shape} is not N x 28 x 28 (or N x 784) images; "
        "a single image needs a leading axis of 1"
    )


def check_pixels(block: np.ndarray, first_row: int, name: str) -> np.ndarray:
    """``block`` as (n, 28, 28) in its own dtype, after checking values are finite and 0..255.

    ``first_row`` is the block's row in the whole array, so the message can point at it.
    Not converted to float32 here: bulk scoring converts one model batch at a time,
    which keeps a large uint8 part a quarter of the size in memory.
    """
    if block.dtype.kind == "f":
        bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if bad.any():
            row = first_row + int(np.argmax(bad))
            raise ArrayInputError(
                f"{name}: row {row} contains NaN or infinity; pixels must be numbers in 0..255"
            )
    if block.dtype != np.uint8 and block.size:
        low, high = block.min(), block.max()
        if low < 0 or high > PIXEL_MAX:
            flat = block.reshape(len(block), -1)
            row = first_row + int(np.argmax(((flat < 0) | (flat > PIXEL_MAX)).any(axis=1)))
            raise ArrayInputError(
                f"{name}: row {row} has values outside 0..255 (min {low}, max {high}); "
                "send raw pixels, not normalised ones"
            )
    return block.reshape(-1, SIDE, SIDE)


def npy_layout(path: str | os.PathLike[str]) -> tuple[int, np.dtype, int]:
    """Image count, dtype and data offset of a ``.npy`` file, checked against its size."""
    name = os.fspath(path)
    with open(path, "rb") as handle:
        shape, dtype, offset = read_npy_header(handle, name)
    n = image_count(shape, name)
    expected = offset + n * SIDE * SIDE * dtype.itemsize
    actual = os.path.getsize(path)
    if actual != expected:
        what = "truncated" if actual < expected else "followed by trailing data"
        raise ArrayInputError(
            f"{name}: {actual} bytes but its header {shape} {dtype} needs {expected}; "
            f"the file is {what}"
        )
    return n, dtype, offset
