"""IDX parsing: round trips, and clear errors for every way a file can be wrong."""

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.data.idx import parse_idx, read_idx
from support import ROOT
from support.synthetic import encode_idx


def test_round_trip_images_and_labels():
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    assert np.array_equal(parse_idx(encode_idx(images)), images)
    assert np.array_equal(parse_idx(encode_idx(labels)), labels)
    assert parse_idx(encode_idx(images)).shape == (3, 28, 28)


def test_header_is_mnist_magic():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes([0, 0, 8, 3]) == (2051).to_bytes(4, "big")
    assert int.from_bytes(data[4:8], "big") == 2


def test_real_mnist_test_labels_parse():
    import gzip

    path = ROOT.parent / "shared" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        pytest.skip("../shared/mnist not beside the checkout")
    labels = parse_idx(gzip.decompress(path.read_bytes()))
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x1f\x8b\x08\x00rest", "bad IDX magic"),
        (b"<html>not found</html>", "bad IDX magic"),
        (bytes([0, 0, 8, 3]) + b"\x00\x00", "truncated IDX header"),
    ],
)
def test_bad_headers_name_the_problem(data, message):
    with pytest.raises(DataFormatError, match=message):
        parse_idx(data, "f.idx")


def test_truncated_body_is_detected():
    data = encode_idx(np.zeros((5, 28, 28), np.uint8))[:-10]
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        parse_idx(data, "train-images")


def test_missing_file_says_run_download(tmp_path):
    with pytest.raises(DataFormatError, match="run the download stage"):
        read_idx(tmp_path / "nope")
