"""The logged features measure what their docstrings say, on inputs where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_mlops.monitoring.features import FEATURES, batch_features, image_features


def _bar(rows: slice, cols: slice, value: int = 255) -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    img[rows, cols] = value
    return img


def test_a_known_rectangle_gives_known_numbers() -> None:
    img = _bar(slice(4, 24), slice(10, 14))  # 20 rows x 4 columns of full ink
    f = image_features(img)
    assert list(f) == list(FEATURES)
    assert f["ink_fraction"] == pytest.approx(80 / 784)
    assert f["stroke_width"] == pytest.approx(2 * 80 / (2 * 20 + 2 * 4))
    assert f["bbox_aspect"] == pytest.approx(4 / 20)
    assert f["com_x"] == pytest.approx(11.5)
    assert f["com_y"] == pytest.approx(13.5)
    assert f["mean_intensity"] == pytest.approx(80 * 255 / 784)


def test_thicker_strokes_read_wider_and_shifted_ink_moves_the_centre() -> None:
    thin = image_features(_bar(slice(4, 24), slice(13, 15)))
    thick = image_features(_bar(slice(4, 24), slice(11, 17)))
    assert thick["stroke_width"] > 2 * thin["stroke_width"]
    assert thick["ink_fraction"] == pytest.approx(3 * thin["ink_fraction"])
    moved = image_features(_bar(slice(4, 24), slice(19, 21)))
    assert moved["com_x"] == pytest.approx(thin["com_x"] + 6)
    assert moved["com_y"] == pytest.approx(thin["com_y"])


def test_faint_ink_is_not_ink_but_counts_in_the_mean() -> None:
    f = image_features(_bar(slice(4, 24), slice(10, 14), value=100))
    assert f["ink_fraction"] == 0 and f["stroke_width"] == 0 and f["bbox_aspect"] == 0
    assert f["mean_intensity"] == pytest.approx(80 * 100 / 784)


def test_a_blank_input_gives_finite_defaults() -> None:
    f = image_features(np.zeros((28, 28), np.float32))
    assert all(np.isfinite(v) for v in f.values())
    assert (f["com_x"], f["com_y"]) == (13.5, 13.5)


def test_batch_and_single_agree_and_flat_inputs_are_accepted() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    batch = batch_features(images)
    for i in range(5):
        single = image_features(images[i].reshape(784))
        for name in FEATURES:
            assert batch[name][i] == pytest.approx(single[name])


@pytest.mark.parametrize("shape", [(27, 28), (2, 28, 28), (10,)])
def test_a_wrong_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="28x28"):
        image_features(np.zeros(shape))
