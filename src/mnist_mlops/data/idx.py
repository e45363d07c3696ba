"""Read IDX files (the format MNIST ships in), validated.

torchvision's reader asserts on bad input; this one raises a
:class:`DataFormatError` that names the file and the problem, which is what a
user with a truncated download needs to see. All IDX element types are read
(the tests write their synthetic files with ``support.synthetic.encode_idx``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import DataFormatError

# IDX type code -> big-endian numpy dtype.
_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def idx_layout(data: bytes, name: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """Element dtype (big-endian), shape and data offset of IDX bytes, from the header alone.

    Readers that stream a large file (bulk scoring) need the layout without the data.
    """
    if len(data) < 4:
        raise DataFormatError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, type_code, ndim = int.from_bytes(data[0:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataFormatError(
            f"{name}: bad IDX magic number {data[:4].hex()}; "
            "the file is corrupt or not an (uncompressed) IDX file"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.dtype(_DTYPES[type_code]), shape, header


def idx_size(dtype: np.dtype, shape: tuple[int, ...], offset: int) -> int:
    """The exact size in bytes of an IDX file with this layout."""
    return offset + int(np.prod(shape)) * dtype.itemsize


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, checking magic, rank and length."""
    dtype, shape, header = idx_layout(data, name)
    expected = idx_size(dtype, shape, header)
    if len(data) != expected:
        raise DataFormatError(
            f"{name}: size {len(data)} bytes does not match its header shape {shape} "
            f"({expected} bytes); the file is truncated or corrupt: delete it and download again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an uncompressed IDX file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{p}: not found; run the download stage first") from None
    return parse_idx(data, str(p))
