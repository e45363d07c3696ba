"""imaging: uploads become MNIST-style 28x28 arrays; bad input fails fast and clearly."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_mlops import imaging


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    total = float(img.sum())
    rows = float((img.sum(axis=1) * np.arange(img.shape[0])).sum()) / total
    cols = float((img.sum(axis=0) * np.arange(img.shape[1])).sum()) / total
    return rows, cols


def ink_bbox(img: np.ndarray) -> tuple[int, int]:
    """(height, width) of the non-zero pixels' bounding box."""
    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def assert_mnist_style(out: np.ndarray) -> None:
    """float32 28x28 in 0..255, black background, bright ink fit in 20x20, centred by mass."""
    assert out.shape == (28, 28)
    assert out.dtype == np.float32
    assert out.min() >= 0.0
    assert out.max() == pytest.approx(255.0, abs=1.0)
    assert (out == 0).mean() > 0.6  # mostly black background
    assert out[0, 0] == out[0, -1] == out[-1, 0] == out[-1, -1] == 0.0
    height, width = ink_bbox(out)
    assert max(height, width) in (19, 20, 21)  # 20 plus at most a pixel of resampling halo
    assert min(height, width) >= 3
    rows, cols = centre_of_mass(out)
    assert abs(rows - 14) <= 0.5 and abs(cols - 14) <= 0.5


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_png_drawing_comes_out_mnist_style(digit_png):
    assert_mnist_style(imaging.preprocess_image(digit_png))


def test_large_off_centre_black_on_white_digit_is_inverted_centred_and_fit(
    make_digit, encode_image
):
    # 1200x900 canvas, digit 150x400 near the bottom-right corner.
    img = make_digit(size=(1200, 900), box=(1000, 450, 1150, 850), width=40)
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    height, width = ink_bbox(out)
    assert height == 20 and width < 12  # tall and narrow: aspect ratio kept


def test_mnist_like_28x28_stays_in_place(encode_image):
    # Already MNIST-style: a white "0" on black, 20 tall, centred by mass.
    img = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(img).ellipse((8, 4, 20, 23), outline=255, width=3)
    src = np.asarray(img, dtype=np.float32)
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    rows, cols = centre_of_mass(src)
    moved_rows, moved_cols = centre_of_mass(out)
    assert abs(moved_rows - rows) <= 1.0 and abs(moved_cols - cols) <= 1.0
    # Already 20 tall and MNIST's stroke width: only the anti-aliased edges may differ.
    np.testing.assert_allclose(out, src, atol=32.0)
    assert correlation(out, src) > 0.95


def test_rgba_with_transparent_background_matches_the_opaque_image(make_digit, encode_image):
    opaque = imaging.preprocess_image(encode_image(make_digit()))
    rgba = make_digit(mode="RGBA", ink=(0, 0, 0, 255), background=(0, 0, 0, 0))
    out = imaging.preprocess_image(encode_image(rgba))
    assert_mnist_style(out)
    assert np.abs(out - opaque).max() < 1.0


def test_white_ink_on_transparent_canvas_is_not_lost(make_digit, encode_image):
    opaque = imaging.preprocess_image(encode_image(make_digit()))
    rgba = make_digit(mode="RGBA", ink=(255, 255, 255, 255), background=(255, 255, 255, 0))
    assert np.abs(imaging.preprocess_image(encode_image(rgba)) - opaque).max() < 1.0


def test_sixteen_bit_png_matches_eight_bit(make_digit, encode_image):
    eight = make_digit()
    sixteen = Image.fromarray(np.asarray(eight, dtype=np.uint16) * 257)  # I;16
    data = encode_image(sixteen)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    expected = imaging.preprocess_image(encode_image(eight))
    assert np.abs(imaging.preprocess_image(data) - expected).max() < 1.0


def test_gif_uses_the_first_frame(make_digit, encode_image):
    first = make_digit()
    second = make_digit(box=(150, 20, 290, 60))  # a squat "7" elsewhere
    gif = encode_image(first, "GIF", save_all=True, append_images=[second], duration=100)
    out = imaging.preprocess_image(gif)
    assert np.abs(out - imaging.preprocess_image(encode_image(first))).max() < 1.0


@pytest.mark.parametrize("fmt", ["JPEG", "BMP"])
def test_jpeg_and_bmp_agree_with_png(make_digit, encode_image, fmt):
    img = make_digit(mode="RGB", ink=(20, 20, 90), background=(250, 245, 235))
    expected = imaging.preprocess_image(encode_image(img))
    out = imaging.preprocess_image(encode_image(img, fmt))
    assert_mnist_style(out)
    assert correlation(out, expected) > 0.97


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda enc, draw: b"", imaging.ImageError, "empty"),
        (lambda enc, draw: b"certainly not an image", imaging.ImageError, "not a PNG, JPEG"),
        (lambda enc, draw: enc(draw(), "TIFF"), imaging.UnsupportedFormatError, "TIFF"),
        (lambda enc, draw: enc(draw(), "WEBP"), imaging.UnsupportedFormatError, "WebP"),
        (
            lambda enc, draw: b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            imaging.UnsupportedFormatError,
            "SVG",
        ),
        (lambda enc, draw: enc(draw())[:300], imaging.ImageError, "could not be decoded"),
        (lambda enc, draw: enc(Image.new("L", (64, 64), 255)), imaging.NoInkError, "no ink"),
        (lambda enc, draw: enc(Image.new("L", (1, 1), 0)), imaging.NoInkError, "no ink"),
        (lambda enc, draw: enc(draw(ink=120, background=135)), imaging.NoInkError, "contrast"),
        (
            lambda enc, draw: b"\x89PNG" + bytes(imaging.MAX_BYTES),
            imaging.ImageTooLargeError,
            "limit",
        ),
    ],
    ids=[
        "empty",
        "text",
        "tiff",
        "webp",
        "svg",
        "truncated",
        "blank",
        "1x1",
        "faint",
        "too-many-bytes",
    ],
)
def test_bad_images_raise_clear_errors(make_digit, encode_image, make, error, message):
    with pytest.raises(error, match=message) as info:
        imaging.preprocess_image(make(encode_image, make_digit))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (7_000, 7_000)])
def test_decompression_bomb_is_rejected_before_decoding(png_bomb, width, height):
    data = png_bomb(width, height)
    assert len(data) < 200
    start = time.perf_counter()
    with pytest.raises(imaging.ImageTooLargeError, match="pixels"):
        imaging.preprocess_image(data)
    assert time.perf_counter() - start < 0.5


def test_pixel_arrays_nested_and_flat_are_the_same_image():
    rng = np.random.default_rng(0)
    nested = rng.integers(0, 256, size=(28, 28)).tolist()
    flat = [v for row in nested for v in row]
    a, b = imaging.pixels_from_array(nested), imaging.pixels_from_array(flat)
    assert a.shape == b.shape == (28, 28) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.asarray(nested, dtype=np.float32))  # not moved


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0] * 783, "shape \\(783,\\)"),
        ([[0.0] * 28] * 27, "shape \\(27, 28\\)"),
        ([[0.0] * 28] * 27 + [[0.0] * 27], "ragged"),
        ([float("nan")] * 784, "finite"),
        ([float("inf")] + [0.0] * 783, "finite"),
        ([1e300] + [0.0] * 783, "0..255"),
        ([-1.0] + [0.0] * 783, "0..255"),
        ([256] + [0] * 783, "0..255"),
        (["12"] * 784, "numbers"),
        ([None] * 784, "numbers"),
        ([True] * 784, "numbers"),
    ],
    ids=[
        "783",
        "27x28",
        "ragged",
        "nan",
        "inf",
        "huge",
        "negative",
        "256",
        "strings",
        "null",
        "bool",
    ],
)
def test_bad_pixel_arrays_raise_clear_errors(values, message):
    with pytest.raises(imaging.ImageError, match=message):
        imaging.pixels_from_array(values)
