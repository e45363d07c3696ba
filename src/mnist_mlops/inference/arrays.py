"""Pixel arrays as ``.npy``: the one check of what an array must be before it reaches the model.

The model takes float32 (N, 28, 28) pixels on a 0..255 scale. An array of another shape,
of a dtype that is not a plain number, or holding NaN, infinity or values outside 0..255
would still run through ONNX Runtime and give confident nonsense, so it is refused with a
one-line :class:`ArrayFormatError` (a ``DataFormatError``: the CLIs print it as their
one-line error; the service answers it as a 4xx JSON message) naming the problem and the
fix. The service's ``/predict_npy`` and bulk scoring both read arrays through here, so
they accept and refuse the same files:

- :func:`read_layout` checks the header (a numeric dtype, (N, 28, 28) or (N, 784), N >= 1
  and at most the caller's limit) and that the data is exactly as long as the header
  says, before any data is read: a file claiming a billion rows costs nothing, and two
  files glued together are refused rather than half scored. Pickled (object) arrays are
  never loaded.
- :func:`check_pixels` checks values (finite, 0..255), naming the first bad row.
- :func:`parse_npy` is both for a body in memory (the service); :func:`npy_layout` is the
  header check of a file that bulk scoring then reads in row blocks, each through
  :func:`check_pixels`. IDX files share :func:`image_count`.

Usage::

    from mnist_mlops.inference.arrays import parse_npy
    batch = parse_npy(open("digits.npy", "rb").read(), max_rows=256)  # (N, 28, 28) float32
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from mnist_mlops.core.errors import DataFormatError

SIDE = 28  # images are SIDE x SIDE, given as (N, SIDE, SIDE) or (N, SIDE * SIDE)
PIXEL_MAX = 255
NUMBER_KINDS = "iuf"  # signed and unsigned integers, floats (not bool, complex, objects)
HEADER_LIMIT = 10_000  # bytes of header numpy will parse (its own default)
SAVE_HINT = "save it with numpy.save(path, array) from an (N, 28, 28) or (N, 784) array"


class ArrayFormatError(DataFormatError):
    """The bytes are not a usable array of digit images; the message says why and what to send."""


class TooManyRowsError(ArrayFormatError):
    """More images than the caller accepts in one piece (the service answers 413, not 400)."""


@dataclass(frozen=True)
class NpyLayout:
    """What a checked ``.npy`` header announces: N images of ``dtype`` from byte ``offset``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    fortran: bool

    @property
    def n(self) -> int:
        return self.shape[0]


def read_layout(
    stream: BinaryIO, size: int, name: str = "", max_rows: int | None = None
) -> NpyLayout:
    """The checked layout of the ``.npy`` of ``size`` bytes at ``stream`` (read: header only).

    ``name`` (a file path) starts each message; ``max_rows`` bounds N (TooManyRowsError).
    """
    where = f"{name}: " if name else ""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream, HEADER_LIMIT)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream, HEADER_LIMIT)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
    except Exception as exc:  # numpy's parser raises ValueError, SyntaxError, TokenError...
        raise ArrayFormatError(f"{where}not a .npy file ({exc}); {SAVE_HINT}") from None
    shape, fortran, dtype = header
    if dtype.kind not in NUMBER_KINDS or dtype.fields is not None:
        raise ArrayFormatError(
            f"{where}dtype {dtype} is not a number type; "
            "save the pixels as uint8 or float32 (0..255)"
        )
    n = image_count(tuple(shape), name, max_rows)
    layout = NpyLayout(tuple(shape), dtype, stream.tell(), bool(fortran))
    announced, follow = n * SIDE * SIDE * dtype.itemsize, size - layout.offset
    if follow < announced:
        raise ArrayFormatError(
            f"{where}the .npy is truncated: its header announces {announced} bytes of data, "
            f"{follow} follow"
        )
    if follow > announced:
        raise ArrayFormatError(
            f"{where}the .npy is followed by trailing data: its header announces {announced} "
            f"bytes of data, {follow} follow; send one array per file"
        )
    return layout


def image_count(shape: tuple[int, ...], name: str = "", max_rows: int | None = None) -> int:
    """N of an (N, 28, 28) or (N, 784) array, 1 <= N <= ``max_rows``; else ArrayFormatError."""
    where = f"{name}: " if name else ""
    if shape[1:] not in ((SIDE, SIDE), (SIDE * SIDE,)):
        raise ArrayFormatError(
            f"{where}shape {shape} is not N x {SIDE} x {SIDE} (or N x {SIDE * SIDE}) images; "
            "a single image needs a leading axis of 1"
        )
    if shape[0] < 1:
        raise ArrayFormatError(f"{where}the array holds no images (shape {shape})")
    if max_rows is not None and shape[0] > max_rows:
        raise TooManyRowsError(
            f"{where}the array holds {shape[0]} images, over the limit of {max_rows}; "
            "send it in parts"
        )
    return int(shape[0])


def check_pixels(block: np.ndarray, first_row: int = 0, name: str = "") -> np.ndarray:
    """``block`` as (n, 28, 28) in its own dtype, after checking values are finite and 0..255.

    ``first_row`` is the block's row in the whole array, so the message can point at it.
    Not converted to float32 here: bulk scoring converts one model batch at a time,
    which keeps a large uint8 part a quarter of the size in memory.
    """
    where = f"{name}: " if name else ""
    flat = block.reshape(len(block), -1)
    if block.dtype.kind == "f":
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            row = first_row + int(np.argmax(bad))
            raise ArrayFormatError(
                f"{where}row {row} contains NaN or infinity; pixels must be numbers in 0..255"
            )
    if block.dtype != np.uint8 and block.size:
        low, high = block.min(), block.max()
        if low < 0 or high > PIXEL_MAX:
            row = first_row + int(np.argmax(((flat < 0) | (flat > PIXEL_MAX)).any(axis=1)))
            raise ArrayFormatError(
                f"{where}row {row} has values outside 0..255 (min {low:g}, max {high:g}); "
                "send raw pixels, not normalised ones"
            )
    return block.reshape(-1, SIDE, SIDE)


def parse_npy(data: bytes, max_rows: int) -> np.ndarray:
    """``.npy`` bytes in memory -> float32 (N, 28, 28), 1 <= N <= ``max_rows``, values 0..255."""
    layout = read_layout(io.BytesIO(data), len(data), max_rows=max_rows)
    array = np.frombuffer(data, layout.dtype, layout.n * SIDE * SIDE, layout.offset)
    array = array.reshape(layout.shape, order="F" if layout.fortran else "C")
    return np.ascontiguousarray(check_pixels(array), dtype=np.float32)


def npy_layout(path: str | os.PathLike[str]) -> NpyLayout:
    """The checked layout of an ``.npy`` file, which bulk scoring reads in row blocks.

    Row blocks are contiguous only in C order, so a Fortran-ordered file is refused here
    (an upload in memory is read whole: :func:`parse_npy` takes either order).
    """
    name = os.fspath(path)
    with open(path, "rb") as handle:
        layout = read_layout(handle, os.fstat(handle.fileno()).st_size, name)
    if layout.fortran:
        raise ArrayFormatError(
            f"{name}: Fortran-ordered array; rows are read in blocks, so save a C-ordered "
            "copy (numpy.save(path, numpy.ascontiguousarray(array)))"
        )
    return layout
