"""Pixel arrays in bulk: an ``.npy`` file's bytes -> the model's float32 (N, 28, 28), checked.

The service's ``/predict_npy`` and bulk scoring read arrays through here, so both refuse
the same things with the same one-line messages: anything but a plain numeric array (no
pickled objects: ``allow_pickle=False``), a shape other than (N, 28, 28) or (N, 784),
no images or more than ``max_rows``, NaN or infinity, values outside 0..255. The header
is checked before any data is read, so a file claiming a billion rows costs nothing.
Values are used as they are (white ink on black, already MNIST-style), like the JSON
pixel arrays of :func:`mnist_mlops.imaging.pixels_from_array`.

Usage::

    from mnist_mlops.inference.arrays import parse_npy
    batch = parse_npy(open("digits.npy", "rb").read(), max_rows=256)  # (N, 28, 28) float32
"""

from __future__ import annotations

import io

import numpy as np

from mnist_mlops.core.errors import DataFormatError

SIDE = 28  # images are SIDE x SIDE, given as (N, SIDE, SIDE) or (N, SIDE * SIDE)
NUMERIC_KINDS = "iuf"  # signed and unsigned integers, floats (not bool, complex, objects)
HEADER_LIMIT = 10_000  # bytes of header numpy will parse (its own default)
SAVE_HINT = "save it with numpy.save(path, array) from an (N, 28, 28) or (N, 784) array"


class ArrayFormatError(DataFormatError):
    """The bytes are not a usable array of digit images; the message says why and what to send."""


class TooManyRowsError(ArrayFormatError):
    """More images than the caller accepts in one piece."""


def parse_npy(data: bytes, max_rows: int) -> np.ndarray:
    """``.npy`` bytes -> float32 (N, 28, 28), 1 <= N <= ``max_rows``, values 0..255."""
    stream = io.BytesIO(data)
    shape, dtype = _read_header(stream)
    check_shape(shape, max_rows)
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise ArrayFormatError(
            f"the array must hold numbers (integers or floats); got dtype {dtype.str!r}"
        )
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - stream.tell() < expected:
        raise ArrayFormatError(
            f"the .npy file is truncated: its header announces {expected} bytes of data, "
            f"{len(data) - stream.tell()} follow"
        )
    stream.seek(0)
    try:
        array = np.load(stream, allow_pickle=False)
    except ValueError as exc:  # numpy's own checks, should ours ever miss one
        raise ArrayFormatError(f"not a readable .npy array: {exc}") from None
    return as_pixel_batch(array)


def check_shape(shape: tuple[int, ...], max_rows: int) -> None:
    """Refuse any shape but (N, 28, 28) / (N, 784) with 1 <= N <= ``max_rows``."""
    if shape[1:] not in ((SIDE, SIDE), (SIDE * SIDE,)):
        raise ArrayFormatError(
            f"the array must have shape (N, {SIDE}, {SIDE}) or (N, {SIDE * SIDE}); got {shape}"
        )
    if shape[0] < 1:
        raise ArrayFormatError("the array holds no images (N = 0)")
    if shape[0] > max_rows:
        raise TooManyRowsError(
            f"the array holds {shape[0]} images, over the limit of {max_rows}; send it in parts"
        )


def as_pixel_batch(array: np.ndarray) -> np.ndarray:
    """A numeric (N, 28, 28) or (N, 784) array, checked finite and in 0..255 -> float32."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ArrayFormatError("the pixels must be finite numbers; got NaN or infinity")
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise ArrayFormatError(f"the pixels must be in 0..255; got values from {low:g} to {high:g}")
    return np.ascontiguousarray(array, dtype=np.float32).reshape(-1, SIDE, SIDE)


def _read_header(stream: io.BytesIO) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an ``.npy`` header announces; the stream is left at the data."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream, HEADER_LIMIT)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream, HEADER_LIMIT)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
    except Exception as exc:  # numpy's parser raises ValueError, SyntaxError, TokenError...
        raise ArrayFormatError(f"not a .npy file ({exc}); {SAVE_HINT}") from None
    return shape, dtype
