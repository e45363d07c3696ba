"""Raw pixel arrays as the scoring command reads .npy files (header first, then blocks),
and the command's one-line errors. The service's in-memory parser is tested in tests/inference."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.scoring.arrays import ArrayInputError, check_pixels, npy_layout


def parse_npy(data: bytes) -> np.ndarray:
    """What the command does with an .npy file: its layout from the header, then the pixels."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digits.npy"
        path.write_bytes(data)
        n, dtype, offset = npy_layout(path)
        block = np.fromfile(path, dtype=dtype, offset=offset).reshape(n, 28, 28)
        return check_pixels(block, 0, str(path)).astype(np.float32)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int16])
def test_a_good_array_comes_back_as_float32_images(pixels: np.ndarray, dtype) -> None:
    got = parse_npy(npy(pixels[:5].astype(dtype)))
    assert got.dtype == np.float32 and got.shape == (5, 28, 28)
    assert np.array_equal(got, pixels[:5].astype(np.float32))


def test_flat_rows_are_accepted(pixels: np.ndarray) -> None:
    assert parse_npy(npy(pixels[:3].reshape(3, 784))).shape == (3, 28, 28)


BAD = {
    "shape": (np.zeros((2, 28, 27), np.uint8), "shape (2, 28, 27)"),
    "no batch axis": (np.zeros((28, 28), np.uint8), "leading axis"),
    "empty": (np.zeros((0, 28, 28), np.uint8), "no images"),
    "complex dtype": (np.zeros((1, 28, 28), np.complex64), "not a number type"),
    "bool dtype": (np.zeros((1, 28, 28), bool), "not a number type"),
    "string dtype": (np.full((1, 28, 28), "7"), "not a number type"),
    "NaN": (np.where(np.arange(784).reshape(1, 28, 28) == 5, np.nan, 0.0), "row 0 contains NaN"),
    "infinity": (np.full((2, 28, 28), np.inf, np.float32), "NaN or infinity"),
    "negative": (np.full((1, 28, 28), -1.0), "outside 0..255"),
    "normalised": (np.full((1, 28, 28), 300, np.int32), "outside 0..255"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_arrays_are_refused_naming_the_problem(case: str) -> None:
    array, words = BAD[case]
    with pytest.raises(ArrayInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_npy(npy(array))


def test_the_row_with_nan_is_named(pixels: np.ndarray) -> None:
    array = pixels[:10].astype(np.float32)
    array[7, 3, 3] = np.nan
    with pytest.raises(ArrayInputError, match="row 7 "):
        parse_npy(npy(array))


def test_a_pickled_array_is_never_loaded() -> None:
    body = npy(np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArrayInputError, match="not a number type"):
        parse_npy(body)


@pytest.mark.parametrize("cut", [0, 5, 60, -1])
def test_truncated_or_junk_bodies_are_refused(pixels: np.ndarray, cut: int) -> None:
    with pytest.raises(ArrayInputError):
        parse_npy(npy(pixels[:2])[:cut] if cut else b"just text, no magic")


def test_trailing_bytes_are_refused(pixels: np.ndarray) -> None:
    with pytest.raises(ArrayInputError, match="trailing"):
        parse_npy(npy(pixels[:2]) + b"\0")


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((4, 32, 32), np.uint8), "is not N x 28 x 28"),
        (np.zeros((4, 28, 28), np.complex64), "complex64 is not a number type"),
        (np.full((4, 28, 28), np.nan, np.float32), "row 0 contains NaN"),
    ],
    ids=["shape", "dtype", "nan"],
)
def test_the_command_fails_in_one_line_naming_the_problem(
    tmp_path, score_cli, score_model, array, words
) -> None:
    np.save(tmp_path / "in.npy", array)
    proc = score_cli(str(score_model), "in.npy", "out.parquet", "--no-track", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert not (tmp_path / "out.parquet").exists()
