"""The prepare stage's extra training digits: as served, marker-drawn, flagged 1s, crossed
7s, typed."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError, UserError
from mnist_mlops.data import prepared
from mnist_mlops.data.fonts import FIELD_FONTS
from mnist_mlops.imaging import mnist_style
from mnist_mlops.prepare import variants


def ring_digits(n: int, hole: float = 0.62) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-sized "0"s, off-centre like a scan; ``hole``: its size (0..1) in the ring."""
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r = np.hypot((yy - 12 - i % 3) / 9.0, (xx - 13) / 6.0)
        images[i][(r > hole) & (r < 1.0)] = 255
    return images, np.zeros(n, np.int64)


def test_served_digits_are_what_the_preprocessing_makes_of_them():
    x, y = ring_digits(4)
    out = variants.build_variants(x, y, ("served",), (), 0, seed=0, workers=1)
    served, labels = out["served"]
    assert served.dtype == np.uint8 and served.shape == (4, 28, 28)
    np.testing.assert_array_equal(labels, y)
    for img, done in zip(x, served, strict=True):
        np.testing.assert_allclose(done, np.rint(mnist_style(img.astype(np.float32))), atol=0.5)
        assert not np.array_equal(done, img)  # moved to the centre, binarised: not a copy


def test_marker_digits_are_thicker_and_seeded():
    x, y = ring_digits(6, hole=0.2)  # a small loop, as in a 6, 8 or 9
    first = variants.build_variants(x, y, ("served", "marker"), (), 0, seed=1, workers=1)
    again = variants.build_variants(x, y, ("marker",), (), 0, seed=1, workers=1)
    other = variants.build_variants(x, y, ("marker",), (), 0, seed=2, workers=1)
    served, marker = first["served"][0], first["marker"][0]
    np.testing.assert_array_equal(marker, again["marker"][0])  # same seed, same digits
    assert not np.array_equal(marker, other["marker"][0])  # the brush width is drawn
    # A thick brush closes the ring's hole, which the stroke normalisation cannot reopen.
    hole = (slice(None), slice(12, 16), slice(12, 16))
    assert (served[hole].mean(axis=(1, 2)) == 0).all()
    assert (marker[hole].mean(axis=(1, 2)) > 200).all()


def test_brushed_digits_have_one_stroke_width_and_are_seeded():
    # A ring drawn thick on the left and thin on the right, as a pen pressed unevenly.
    yy, xx = np.mgrid[0:28, 0:28]
    r = np.hypot((yy - 14) / 9.0, (xx - 14) / 7.0)
    x = np.zeros((4, 28, 28), np.uint8)
    x[:, (r < 1.0) & (r > np.where(xx < 14, 0.45, 0.85))] = 255
    y = np.zeros(4, np.int64)
    first = variants.build_variants(x, y, ("served", "brushed"), (), 0, seed=1, workers=1)
    again = variants.build_variants(x, y, ("brushed",), (), 0, seed=1, workers=1)["brushed"][0]
    other = variants.build_variants(x, y, ("brushed",), (), 0, seed=2, workers=1)["brushed"][0]
    served, brushed = first["served"][0], first["brushed"][0]
    np.testing.assert_array_equal(brushed, again)  # same seed, same digits
    assert not np.array_equal(brushed, other)  # the brush width is drawn
    halves = lambda img: (img[:, :14].sum(), img[:, 14:].sum())  # noqa: E731
    left, right = halves(served[0].astype(float))
    assert left > 1.3 * right  # the scan's uneven stroke survives plain preprocessing
    for img in brushed:
        left, right = halves(img.astype(float))
        assert 0.75 < left / right < 1.33  # one brush: both sides alike


def stems(n: int) -> np.ndarray:
    """``n`` MNIST-sized American 1s: a plain vertical bar."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 4:24, 13:16] = 255
    return images


def test_flagged_ones_only_touch_the_ones_and_get_a_flag_top_left():
    x = np.concatenate([stems(4), ring_digits(2)[0]])
    y = np.array([1, 1, 1, 1, 0, 0], np.int64)
    flagged, labels = variants.build_variants(x, y, ("flagged",), (), 0, seed=0, workers=1)[
        "flagged"
    ]
    np.testing.assert_array_equal(labels, [1, 1, 1, 1])  # the 0s are not redrawn as 1s
    plain = np.rint(mnist_style(x[0].astype(np.float32)))
    for done in flagged:
        assert (done > 0).sum() > (plain > 0).sum()  # more ink: a flag
        top_left = done[:10, :12].sum()
        assert top_left > plain[:10, :12].sum()  # the flag falls to the left of the top


def sevens(n: int) -> np.ndarray:
    """``n`` MNIST-sized American 7s: a top bar and a vertical stem down from its right end."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 4:7, 8:20] = 255
    images[:, 4:24, 17:20] = 255
    return images


def test_crossed_sevens_only_touch_the_sevens_and_get_a_bar_across_the_stem():
    x = np.concatenate([sevens(4), stems(2)])
    y = np.array([7, 7, 7, 7, 1, 1], np.int64)
    out = variants.build_variants(x, y, ("crossed",), (), 0, seed=0, workers=1)
    crossed, labels = out["crossed"]
    np.testing.assert_array_equal(labels, [7, 7, 7, 7])  # the 1s are not redrawn as 7s
    plain = np.rint(mnist_style(x[0].astype(np.float32)))
    stem = int(np.argmax(plain[20]))  # the stem's column low down, where no bar is
    for done in crossed:
        assert (done > 0).sum() > (plain > 0).sum()  # more ink: a bar
        middle = slice(11, 19)  # the bar crosses below the top bar, on both sides of the stem
        assert done[middle, : stem - 2].sum() > plain[middle, : stem - 2].sum()
        assert done[middle, stem + 3 :].sum() > plain[middle, stem + 3 :].sum()


def test_typed_digits_cover_every_font_and_digit():
    fonts = ("STIXGeneral.ttf", "cmr10.ttf")
    out = variants.build_variants(
        np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), ("fonts",), fonts, 2, seed=0,
        workers=2,
    )  # fmt: skip
    x, y = out["fonts"]
    assert x.shape == (2 * 10 * 2, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == [4] * 10
    assert (x.reshape(len(x), -1).max(axis=1) > 200).all()  # every one has ink


def test_a_field_set_font_is_refused_as_a_leak():
    with pytest.raises(UserError, match=r"prepare.fonts: DejaVuSans.ttf .*field set"):
        variants.training_fonts(("STIXGeneral.ttf", FIELD_FONTS[0]))
    with pytest.raises(UserError, match=r"no font NoSuch.ttf .* known: .*cmr10.ttf"):
        variants.training_fonts(("NoSuch.ttf",))
    with pytest.raises(UserError, match=r"kind 'fonts' needs prepare.fonts"):
        variants.build_variants(*ring_digits(1), ("fonts",), (), 0, seed=0, workers=1)


def test_saved_variants_load_back_and_bad_files_say_rerun(tmp_path):
    x, y = ring_digits(3)
    counts = prepared.save_variants({"marker": (x, y), "served": (x[:1], y[:1])}, tmp_path)
    assert counts == {"served": 1, "marker": 3}
    images, labels = prepared.load_variants(tmp_path)
    assert images.shape == (4, 28, 28) and labels.tolist() == [0, 0, 0, 0]
    with pytest.raises(DataFormatError, match="run the prepare stage first"):
        prepared.load_variants(tmp_path / "missing")
    (tmp_path / prepared.VARIANTS_FILE).write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="rerun the prepare stage"):
        prepared.load_variants(tmp_path)
