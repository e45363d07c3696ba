"""The one ``.npy`` check: good arrays become the model's float32 batch; everything else is
one typed error with a one-line message naming the problem (never a numpy or pickle
exception), the same whether the array arrives as the service's body in memory
(``parse_npy``) or as a file bulk scoring reads in row blocks (``npy_layout`` +
``check_pixels``)."""

from __future__ import annotations

import ast
import io
import random
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.inference import arrays
from mnist_mlops.inference.arrays import (
    ArrayFormatError,
    TooManyRowsError,
    check_pixels,
    npy_layout,
    parse_npy,
)

MAX_ROWS = 256


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def header_only(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def read_file_in_blocks(path: Path, block_rows: int = 3) -> np.ndarray:
    """What bulk scoring does with an .npy file: the layout, then rows block by block."""
    layout = npy_layout(path)
    rows = 28 * 28 * layout.dtype.itemsize
    blocks = []
    with open(path, "rb") as handle:
        for start in range(0, layout.n, block_rows):
            handle.seek(layout.offset + start * rows)
            raw = handle.read(min(block_rows, layout.n - start) * rows)
            block = np.frombuffer(raw, layout.dtype).reshape(-1, 28, 28)
            blocks.append(check_pixels(block, start, str(path)))
    return np.concatenate(blocks).astype(np.float32)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a,
        lambda a: a.reshape(len(a), 784),
        lambda a: a.astype(np.float32),
        lambda a: a.astype(">f8"),  # big-endian
        lambda a: a.astype(np.int16),
        lambda a: a.astype(np.float16),
    ],
    ids=["uint8", "flat", "float32", "big-endian-f8", "int16", "float16"],
)
def test_numeric_arrays_become_the_same_float32_batch_in_memory_and_from_a_file(
    images, convert, tmp_path
):
    data = npy(convert(images))
    batch = parse_npy(data, MAX_ROWS)
    assert batch.dtype == np.float32 and batch.shape == (7, 28, 28)
    assert batch.flags.c_contiguous
    np.testing.assert_array_equal(batch, images.astype(np.float32))
    (tmp_path / "in.npy").write_bytes(data)
    np.testing.assert_array_equal(read_file_in_blocks(tmp_path / "in.npy"), batch)


def test_a_fortran_ordered_body_is_read_whole_but_a_file_is_refused(images, tmp_path):
    """An upload is in memory, so either order works; a file is read in row blocks, which
    only C order lays out contiguously, so the command asks for a C-ordered copy."""
    data = npy(np.asfortranarray(images.astype(np.int16)))
    np.testing.assert_array_equal(parse_npy(data, MAX_ROWS), images.astype(np.float32))
    (tmp_path / "f.npy").write_bytes(data)
    with pytest.raises(ArrayFormatError, match="Fortran-ordered.*ascontiguousarray"):
        npy_layout(tmp_path / "f.npy")


def test_exactly_the_bound_is_accepted():
    batch = parse_npy(npy(np.full((MAX_ROWS, 784), 255, np.uint8)), MAX_ROWS)
    assert batch.shape == (MAX_ROWS, 28, 28) and float(batch.max()) == 255.0


GOOD = npy(np.zeros((2, 784)))
BAD = {
    "empty": (b"", "not a .npy file"),
    "not-npy": (b"P5 28 28 255\n" + bytes(784), "not a .npy file"),
    "png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a .npy file"),
    "header-cut": (GOOD[:40], "not a .npy file"),
    "truncated-data": (GOOD[:-1], "truncated: its header announces 12544 bytes of data, 12543"),
    "trailing-data": (GOOD + b"\0", "trailing data: its header announces 12544 bytes"),
    "two-files-glued": (GOOD + GOOD, "trailing data"),
    "pickled-objects": (npy(np.array([[{"x": 1}] * 784] * 2, dtype=object)), "dtype object"),
    "pickled-list": (npy(np.array([{"x": 1}], dtype=object)), "not a number type"),
    "strings": (npy(np.array([["7"] * 784] * 2)), "dtype <U1 is not a number type"),
    "booleans": (npy(np.ones((2, 784), bool)), "dtype bool is not a number type"),
    "complex": (npy(np.ones((2, 784), np.complex64)), "dtype complex64 is not a number type"),
    "structured": (npy(np.zeros((2, 784), dtype=[("v", "f4")])), "not a number type"),
    "one-image-no-batch-axis": (npy(np.zeros((28, 28))), "leading axis of 1"),
    "flat-783": (npy(np.zeros((2, 783))), "shape (2, 783) is not N x 28 x 28 (or N x 784)"),
    "rgb": (npy(np.zeros((2, 28, 28, 3))), "shape (2, 28, 28, 3)"),
    "scalar": (npy(np.float64(3)), "shape ()"),
    "no-images": (npy(np.zeros((0, 784))), "no images"),
    "nan": (npy(np.full((2, 784), np.nan)), "row 0 contains NaN or infinity"),
    "infinity": (npy(np.full((2, 28, 28), np.inf, np.float32)), "NaN or infinity"),
    "negative": (npy(np.full((2, 784), -1, np.int8)), "outside 0..255 (min -1, max -1)"),
    "over-255": (npy(np.full((2, 784), 256, np.int32)), "outside 0..255"),
    "normalised-floats": (npy(np.full((2, 784), -0.5)), "not normalised ones"),
    "huge-float": (npy(np.full((2, 784), 1e300)), "outside 0..255"),
}


@pytest.mark.parametrize("name", BAD, ids=BAD.keys())
def test_bad_input_is_the_same_one_line_error_in_memory_and_from_a_file(name, tmp_path):
    data, message = BAD[name]
    with pytest.raises(ArrayFormatError) as in_memory:
        parse_npy(data, MAX_ROWS)
    path = tmp_path / "in.npy"
    path.write_bytes(data)
    with pytest.raises(ArrayFormatError) as from_file:
        read_file_in_blocks(path)
    assert message in str(in_memory.value)
    assert "\n" not in str(in_memory.value)
    assert isinstance(in_memory.value, DataFormatError)  # the CLIs' one-line errors
    # The file's message is the body's, with the file named first.
    assert str(from_file.value) == f"{path}: {in_memory.value}"


def test_the_row_with_a_bad_value_is_named_in_the_whole_array(images, tmp_path):
    array = images.astype(np.float32)
    array[5, 3, 3] = np.nan
    with pytest.raises(ArrayFormatError, match="row 5 contains NaN"):
        parse_npy(npy(array), MAX_ROWS)
    np.save(tmp_path / "in.npy", array)
    with pytest.raises(ArrayFormatError, match="row 5 contains NaN"):
        read_file_in_blocks(tmp_path / "in.npy", block_rows=2)  # the third block, its 2nd row


def test_more_rows_than_the_bound_is_its_own_type():
    with pytest.raises(TooManyRowsError, match="257 images, over the limit of 256"):
        parse_npy(npy(np.zeros((MAX_ROWS + 1, 784), np.uint8)), MAX_ROWS)


def test_a_header_claiming_a_trillion_rows_is_refused_before_reading_data(tmp_path):
    with pytest.raises(TooManyRowsError, match="1000000000000 images"):
        parse_npy(header_only((10**12, 784)) + bytes(64), MAX_ROWS)
    (tmp_path / "big.npy").write_bytes(header_only((10**12, 784)) + bytes(64))
    with pytest.raises(ArrayFormatError, match="truncated: .* 6272000000000000 bytes"):
        npy_layout(tmp_path / "big.npy")  # no bound on a file, but it must hold the data


def test_a_header_claiming_more_data_than_sent_is_truncated():
    with pytest.raises(ArrayFormatError, match="announces 12544 bytes of data, 64 follow"):
        parse_npy(header_only((2, 784)) + bytes(64), MAX_ROWS)


def test_random_corruptions_of_a_valid_file_never_escape_as_another_error():
    # Flip a few bytes in the magic string and header of a good file, many times (seeded):
    # whatever numpy's parser trips over comes back as ArrayFormatError.
    good = npy(np.zeros((3, 784), np.uint8))
    rng = random.Random(0)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(500):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(128)] = rng.randrange(256)
        try:
            parse_npy(bytes(data), MAX_ROWS)
        except ArrayFormatError:
            outcomes["refused"] += 1
        else:
            outcomes["accepted"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 500


def test_the_check_needs_only_numpy_and_core():
    """The service ships it without ONNX Runtime's extras, bulk scoring without the service."""
    tree = ast.parse(Path(arrays.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    stdlib = {"__future__", "dataclasses", "io", "os", "typing"}
    assert imported <= stdlib | {"numpy", "mnist_mlops.core.errors"}
