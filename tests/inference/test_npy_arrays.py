"""``parse_npy``: good .npy bytes become the model's float32 batch; everything else is one
typed error with a message naming the problem (never a numpy or pickle exception)."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.inference.arrays import ArrayFormatError, TooManyRowsError, parse_npy

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
        lambda a: np.asfortranarray(a.astype(np.int16)),
        lambda a: a.astype(np.float16),
    ],
    ids=["uint8", "flat", "float32", "big-endian-f8", "fortran-int16", "float16"],
)
def test_numeric_arrays_become_the_same_float32_batch(images, convert):
    batch = parse_npy(npy(convert(images)), MAX_ROWS)
    assert batch.dtype == np.float32 and batch.shape == (7, 28, 28)
    assert batch.flags.c_contiguous
    np.testing.assert_array_equal(batch, images.astype(np.float32))


def test_exactly_the_bound_is_accepted():
    batch = parse_npy(npy(np.full((MAX_ROWS, 784), 255, np.uint8)), MAX_ROWS)
    assert batch.shape == (MAX_ROWS, 28, 28) and float(batch.max()) == 255.0


BAD = {
    "empty": (b"", "not a .npy file"),
    "not-npy": (b"P5 28 28 255\n" + bytes(784), "not a .npy file"),
    "png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a .npy file"),
    "header-cut": (npy(np.zeros((2, 784)))[:40], "not a .npy file"),
    "truncated-data": (npy(np.zeros((2, 784)))[:-1], "truncated"),
    "pickled-objects": (npy(np.array([[{"x": 1}] * 784] * 2, dtype=object)), "dtype '|O'"),
    "pickled-list": (npy(np.array([{"x": 1}], dtype=object)), "shape"),
    "strings": (npy(np.array([["7"] * 784] * 2)), "dtype"),
    "booleans": (npy(np.ones((2, 784), bool)), "dtype"),
    "complex": (npy(np.ones((2, 784), complex)), "dtype"),
    "structured": (npy(np.zeros((2, 784), dtype=[("v", "f4")])), "dtype"),
    "one-image-no-batch-axis": (npy(np.zeros((28, 28))), "shape"),
    "flat-783": (npy(np.zeros((2, 783))), "shape"),
    "rgb": (npy(np.zeros((2, 28, 28, 3))), "shape"),
    "scalar": (npy(np.float64(3)), "shape"),
    "no-images": (npy(np.zeros((0, 784))), "no images"),
    "nan": (npy(np.full((2, 784), np.nan)), "NaN"),
    "infinity": (npy(np.full((2, 28, 28), np.inf, np.float32)), "NaN or infinity"),
    "negative": (npy(np.full((2, 784), -1, np.int8)), "0..255"),
    "over-255": (npy(np.full((2, 784), 256, np.int32)), "0..255"),
    "huge-float": (npy(np.full((2, 784), 1e300)), "0..255"),
}


@pytest.mark.parametrize("name", BAD, ids=BAD.keys())
def test_bad_input_is_one_typed_error_naming_the_problem(name):
    data, message = BAD[name]
    with pytest.raises(ArrayFormatError) as refused:
        parse_npy(data, MAX_ROWS)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert isinstance(refused.value, DataFormatError)  # the CLIs' one-line errors


def test_more_rows_than_the_bound_is_its_own_type():
    with pytest.raises(TooManyRowsError, match="257 images, over the limit of 256"):
        parse_npy(npy(np.zeros((MAX_ROWS + 1, 784), np.uint8)), MAX_ROWS)


def test_a_header_claiming_a_trillion_rows_is_refused_before_reading_data():
    with pytest.raises(TooManyRowsError, match="1000000000000 images"):
        parse_npy(header_only((10**12, 784)) + bytes(64), MAX_ROWS)


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
