"""imaging: uploads become MNIST-style 28x28 arrays; bad input fails fast and clearly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from mnist_mlops import imaging
from support.digits import png_claiming_size


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
    assert height in (20, 21) and width < 13  # tall and narrow: aspect ratio kept


def shifted(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``img`` moved by (dy, dx) pixels, bilinear, zeros shifted in."""
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - iy, dx - ix
    pad = np.pad(img, 2)
    out = np.zeros_like(pad)
    for wy, oy in ((1 - fy, iy), (fy, iy + 1)):
        for wx, ox in ((1 - fx, ix), (fx, ix + 1)):
            out += wy * wx * np.roll(pad, (oy, ox), axis=(0, 1))
    return out[2:-2, 2:-2]


def test_mnist_like_28x28_stays_in_place(encode_image):
    # Already MNIST-style: a white "0" on black, 20 tall, centred by mass.
    img = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(img).ellipse((8, 4, 20, 23), outline=255, width=3)
    src = np.asarray(img, dtype=np.float32)
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    rows, cols = centre_of_mass(src)
    # Only moved so its centre of mass is at (14, 14), by a fraction of a pixel.
    expected = shifted(src, 14 - rows, 14 - cols)
    # Already 20 tall and MNIST's stroke width: only the anti-aliased edges may differ.
    np.testing.assert_allclose(out, expected, atol=40.0)
    assert correlation(out, expected) > 0.95


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


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP"])
def test_jpeg_webp_and_bmp_agree_with_png(make_digit, encode_image, fmt):
    img = make_digit(mode="RGB", ink=(20, 20, 90), background=(250, 245, 235))
    expected = imaging.preprocess_image(encode_image(img))
    out = imaging.preprocess_image(encode_image(img, fmt))
    assert_mnist_style(out)
    assert correlation(out, expected) > 0.97


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda enc, draw: b"", imaging.ImageError, "empty"),
        (lambda enc, draw: b"certainly not an image", imaging.ImageError, imaging.ACCEPTED),
        (lambda enc, draw: enc(draw(), "TIFF"), imaging.UnsupportedFormatError, "TIFF"),
        (
            lambda enc, draw: b"\0\0\0\x1cftypavif" + bytes(64),
            imaging.UnsupportedFormatError,
            "AVIF",
        ),
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
        "avif",
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
def test_decompression_bomb_is_rejected_before_decoding(width, height):
    # The file holds 8x8 pixels of data: decoding it would fail on the missing rest with
    # another error, so this one shows the header alone decided. How fast the refusal
    # is, bench/preprocess_speed.py measures.
    data = png_claiming_size(width, height)
    assert len(data) < 200
    claimed = f"{width}x{height}|{width * height} pixels"  # the error names the header's size
    with pytest.raises(imaging.ImageTooLargeError, match=claimed):
        imaging.preprocess_image(data)


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


# ---- photos and drawings as users send them ----------------------------------------------


def photo_of(img: Image.Image, seed: int = 0, shadow: bool = True) -> Image.Image:
    """``img`` (dark ink on white, L) as a phone photo: tinted grainy paper, light gradient,
    a soft shadow over the left part, slight blur."""
    rng = np.random.default_rng(seed)
    ink = 1.0 - np.asarray(img, dtype=np.float32) / 255.0
    h, w = ink.shape
    paper = np.array([205.0, 195.0, 170.0])
    yy, xx = np.mgrid[0:h, 0:w]
    light = 1.0 - 0.35 * xx / w - 0.15 * yy / h
    if shadow:
        light *= 1.0 - 0.4 / (1 + np.exp(-(w * 0.3 - xx) / 15.0))
    rgb = paper * (1 - ink[..., None]) + np.array([30.0, 30.0, 60.0]) * ink[..., None]
    rgb = rgb * light[..., None] + rng.normal(0, 8, (h, w, 1))
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    return out.filter(ImageFilter.GaussianBlur(1.0))


def test_photo_with_grain_gradient_and_shadow_matches_the_clean_drawing(make_digit, encode_image):
    clean = imaging.preprocess_image(
        encode_image(make_digit(size=(600, 450), box=(200, 80, 360, 380)))
    )
    photo = make_digit(size=(600, 450), box=(200, 80, 360, 380))
    out = imaging.preprocess_image(encode_image(photo_of(photo), "JPEG", quality=70))
    assert_mnist_style(out)
    assert correlation(out, clean) > 0.85


def test_exif_orientation_is_honoured(make_digit, encode_image):
    upright = make_digit(size=(400, 300), box=(120, 40, 260, 260))
    expected = imaging.preprocess_image(encode_image(upright, "JPEG", quality=90))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how the phone stored the pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = imaging.preprocess_image(encode_image(stored, "JPEG", quality=90, exif=exif.tobytes()))
    assert correlation(out, expected) > 0.95
    ignored = imaging.preprocess_image(encode_image(stored, "JPEG", quality=90))
    assert correlation(ignored, expected) < 0.6  # the tag is what made the difference


def test_ruled_lines_page_edge_and_dust_are_ignored(make_digit, encode_image):
    clean = imaging.preprocess_image(
        encode_image(make_digit(size=(600, 450), box=(200, 80, 360, 380)))
    )
    img = make_digit(size=(600, 450), box=(200, 80, 360, 380))
    draw = ImageDraw.Draw(img)
    for y in (40, 160, 280, 400):
        draw.line([(0, y), (599, y)], fill=150, width=2)  # ruled lines through the page
    draw.rectangle((0, 0, 14, 449), fill=60)  # the table beyond the page's edge
    for x, y in [(60, 60), (520, 390), (540, 70), (80, 420)]:
        draw.ellipse((x, y, x + 5, y + 5), fill=0)  # dust
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    assert correlation(out, clean) > 0.85


def test_coloured_ink_on_coloured_paper(make_digit, encode_image):
    clean = imaging.preprocess_image(encode_image(make_digit()))
    # Red ink on green paper: about the same brightness, different colour.
    img = make_digit(mode="RGB", ink=(200, 40, 40), background=(90, 170, 90))
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    assert correlation(out, clean) > 0.9


def test_digit_touching_the_border_is_kept_whole(make_digit, encode_image):
    # The same 100x160 "7", once with a margin and once with its strokes cut by the edges.
    inside = imaging.preprocess_image(
        encode_image(make_digit(size=(300, 260), box=(100, 50, 200, 210)))
    )
    touching = make_digit(size=(180, 160), box=(0, 0, 100, 160))
    out = imaging.preprocess_image(encode_image(touching))
    assert_mnist_style(out)
    assert correlation(out, inside) > 0.8


def test_thin_pen_and_thick_marker_come_out_with_similar_strokes(make_digit, encode_image):
    thin = imaging.preprocess_image(
        encode_image(make_digit(size=(800, 800), box=(250, 150, 500, 650), width=3))
    )
    thick = imaging.preprocess_image(
        encode_image(make_digit(size=(800, 800), box=(250, 150, 500, 650), width=90))
    )
    ratio = float(thick.sum()) / float(thin.sum())
    assert 0.6 < ratio < 1.6  # raw, the marker has 30x the pen's ink
    assert correlation(thin, thick) > 0.6  # the same digit (a marker rounds its corners)


def test_big_jpeg_is_decoded_at_a_reduced_scale(encode_image):
    photo = Image.new("RGB", (4000, 3000), (230, 230, 225))
    ImageDraw.Draw(photo).line(
        [(1500, 800), (2500, 800), (1900, 2300)], fill=(20, 20, 20), width=120
    )
    data = encode_image(photo, "JPEG", quality=85)
    assert imaging.decode_image(data).size == (4000, 3000)
    small = imaging.decode_image(data, draft=imaging.WORK)
    assert min(small.size) >= imaging.WORK and max(small.size) <= 1000
    assert_mnist_style(imaging.preprocess_image(data))


def test_marker_loop_filled_in_stays_solid(encode_image):
    # A thick marker "9" whose loop is filled in, the head about as wide as the
    # background window: without the wide second look only its rim was ink.
    img = Image.new("RGB", (1000, 1000), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((350, 200, 650, 500), radius=40, fill=(20, 20, 20))
    draw.line((605, 350, 560, 850), fill=(20, 20, 20), width=120)
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    rows, cols = np.nonzero(out > 64)
    head = out[rows.min() : rows.min() + 8, cols.min() : cols.max() + 1]
    assert (head > 64).mean() > 0.9  # solid (a hollow rim gave 0.21)


def test_paper_inside_a_thick_loop_stays_paper(encode_image):
    img = Image.new("RGB", (1000, 1000), (255, 255, 255))
    ImageDraw.Draw(img).ellipse((300, 150, 700, 850), outline=(20, 20, 20), width=110)
    out = imaging.preprocess_image(encode_image(img))
    assert_mnist_style(out)
    assert out[11:17, 12:16].mean() < 32  # a thick "0" keeps its hole


def test_exact_paper_shortcut_agrees_with_the_estimated_background(make_digit, encode_image):
    from mnist_mlops.imaging.paper import uniform_paper

    drawing = make_digit(size=(300, 200), box=(60, 20, 160, 180), width=12, background=200)
    clean = np.asarray(drawing)[..., None]
    assert uniform_paper(clean) == [200]  # a drawing: the paper is one exact value
    # +-2 levels of grain: no value covers half the picture, so the paper is estimated.
    grain = np.random.default_rng(0).integers(-2, 3, clean.shape)
    grainy = np.clip(clean.astype(int) + grain, 0, 255).astype(np.uint8)
    assert uniform_paper(grainy) is None
    fast = imaging.preprocess_image(encode_image(drawing))
    slow = imaging.preprocess_image(encode_image(Image.fromarray(grainy[..., 0], "L")))
    assert_mnist_style(fast)
    assert correlation(fast, slow) > 0.95
