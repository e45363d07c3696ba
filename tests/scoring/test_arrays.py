"""The scoring command's one-line errors for a bad .npy file. The check itself (the
service's too) is tested in tests/inference/test_npy_arrays.py."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_mlops.inference.arrays import ArrayFormatError
from mnist_mlops.scoring.sources import open_source


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((4, 32, 32), np.uint8), "is not N x 28 x 28"),
        (np.zeros((4, 28, 28), np.complex64), "complex64 is not a number type"),
        (np.full((4, 28, 28), np.nan, np.float32), "row 0 contains NaN"),
        (np.asfortranarray(np.zeros((4, 28, 28), np.uint8)), "Fortran-ordered"),
    ],
    ids=["shape", "dtype", "nan", "fortran"],
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


def test_a_range_of_rows_names_its_bad_row_in_the_whole_file(tmp_path, pixels) -> None:
    array = pixels[:10].astype(np.float32)
    array[7, 3, 3] = 300.0
    np.save(tmp_path / "in.npy", array)
    source = open_source(tmp_path / "in.npy")
    assert len(source.load(0, 5).pixels) == 5
    with pytest.raises(ArrayFormatError, match=r"in\.npy: row 7 has values outside 0\.\.255"):
        source.load(5, 10)
