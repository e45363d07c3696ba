"""Normalisation stats and splits: from train only, seeded, validated on load."""

import json

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError, UserError
from mnist_mlops.data.splits import load_splits, pixel_stats, split_train_val


def test_stats_are_from_scaled_pixels():
    images = np.array([[[0, 255]], [[255, 255]]], dtype=np.uint8)
    mean, std = pixel_stats(images)
    assert mean == pytest.approx(0.75)
    assert std == pytest.approx(np.sqrt(0.1875))


def test_split_is_seeded_disjoint_and_sized():
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1)
    labels = np.arange(100) % 10
    a = split_train_val(images, labels, 20, seed=3)
    b = split_train_val(images, labels, 20, seed=3)
    c = split_train_val(images, labels, 20, seed=4)
    assert [len(x) for x in a] == [80, 80, 20, 20]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2])
    assert set(a[0].ravel()).isdisjoint(a[2].ravel())


def test_val_size_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="split.val_size"):
        split_train_val(np.zeros((10, 28, 28), np.uint8), np.zeros(10), 10, seed=0)


def test_processed_splits_and_stats(processed_dir):
    splits, stats = load_splits(processed_dir)
    assert stats["counts"] == {"train": 300, "val": 100, "test": 200}
    assert splits.x_train.dtype == np.uint8 and splits.x_train.shape == (300, 28, 28)
    assert splits.y_val.dtype == np.int64 and splits.y_val.shape == (100,)
    # The stats must be the training split's, not the whole set's.
    expected_mean, _ = pixel_stats(splits.x_train)
    assert stats["mean"] == pytest.approx(expected_mean)
    assert sum(stats["class_counts"]["train"]) == 300


def test_corrupt_processed_file_names_the_file(processed_dir, tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"garbage")
    (tmp_path / "stats.json").write_text(json.dumps({"mean": 0.1, "std": 0.3}))
    with pytest.raises(DataFormatError, match="mnist.npz"):
        load_splits(tmp_path)


def test_nan_stats_are_rejected(processed_dir, tmp_path):
    (tmp_path / "mnist.npz").write_bytes((processed_dir / "mnist.npz").read_bytes())
    (tmp_path / "stats.json").write_text('{"mean": NaN, "std": 0.3}')
    with pytest.raises(DataFormatError, match="not finite"):
        load_splits(tmp_path)
