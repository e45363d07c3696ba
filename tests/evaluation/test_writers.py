"""The real-writers field set: every UCI digit, presented deterministically, labels kept."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from mnist_mlops.evaluation import writers
from mnist_mlops.evaluation.fieldsets import build_set
from mnist_mlops.imaging import preprocess_image


def test_the_set_is_every_uci_digit_with_its_label() -> None:
    cells, labels = writers.load_writers()
    assert cells.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert np.bincount(labels).min() >= 170  # every digit, about 180 of each
    empty = np.zeros((0, 28, 28), np.uint8)
    blobs, got = build_set("writers", empty, np.zeros(0, np.int64), n=5, seed=7)
    assert len(blobs) == 1797  # all of them, whatever n says
    np.testing.assert_array_equal(got, labels)


def test_same_seed_same_bytes_other_seed_other_images() -> None:
    first, _ = writers.writers_set(7, n=12)
    assert writers.writers_set(7, n=12)[0] == first
    assert not set(writers.writers_set(8, n=12)[0]) & set(first)


def test_presentations_span_the_spec_and_keep_the_digit() -> None:
    blobs, labels = writers.writers_set(3, n=60)
    images = [Image.open(io.BytesIO(b)) for b in blobs]
    assert {im.format for im in images} == {"PNG", "JPEG"}
    sides = [im.width for im in images]
    low, high = writers.SPEC.digit_px
    assert min(sides) >= low * writers.SPEC.page_scale[0] * 0.9
    assert max(sides) > 2 * min(sides)  # sizes vary, not one scale
    # Dark ink on light paper: the page's border is lighter than its darkest pixels.
    for im in images[:10]:
        grey = np.asarray(im.convert("L"), dtype=np.float32)
        assert np.median(grey) > grey.min() + 60
    # The serving preprocessing finds a digit in every one (NoInkError would raise).
    assert all(preprocess_image(blob).shape == (28, 28) for blob in blobs)
    assert len(labels) == len(blobs)
