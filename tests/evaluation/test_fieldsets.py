"""The field sets decide which model becomes champion: each must be what its name says.

Determinism per seed, each set's defining property read back from the encoded bytes
(photo: JPEG, some with an EXIF orientation tag that undoes stored rotated pixels;
marker: thick strokes; pen: thin strokes on tinted paper; canvas: transparent RGBA PNG
with light strokes; fonts: typed in the field fonts only, random labels), labels that
match the digit drawn, and fieldscore scoring exactly as preprocessing + ONNX Runtime do.

The source digits are typed glyphs made MNIST-style, and the "model" is a nearest-
template classifier over them written as a tiny ONNX graph: both fast, no training,
and a classifier that reads these images well, so a label that does not match its
image shows up as a miss.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw, ImageFont, ImageOps

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fonts import FIELD_FONTS, font_dir
from mnist_mlops.evaluation import fieldsets
from mnist_mlops.evaluation.fieldscore import plot_failures
from mnist_mlops.evaluation.fieldsets import EXIF_ORIENTATION, EXIF_STORED, SETS, build_set
from mnist_mlops.evaluation.fieldspecs import CANVAS, MARKER, PEN, PHOTO, SPECS
from mnist_mlops.imaging import ImageError, mnist_style, preprocess_image, to_uint8
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session
from support.fieldscore import score_set

N = 12  # images per set: enough to see each trait, a few seconds per set
SEED = 1
SOURCE_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf")


def source_digits() -> tuple[np.ndarray, np.ndarray]:
    """Each digit typed in a few fonts, as MNIST-style uint8 (N, 28, 28): the 'test split'."""
    images, labels = [], []
    for name in SOURCE_FONTS:
        font = ImageFont.truetype(str(font_dir() / name), 80)
        for digit in range(10):
            page = Image.new("L", (120, 120), 0)
            ImageDraw.Draw(page).text((60, 60), str(digit), fill=255, font=font, anchor="mm")
            images.append(to_uint8(mnist_style(np.asarray(page, dtype=np.float32))))
            labels.append(digit)
    return np.stack(images), np.array(labels, dtype=np.int64)


def template_model(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """An ONNX graph (the exported model's interface) scoring each class by its best
    cosine match among the source digits: pixels (N, 28, 28) -> logits (N, 10)."""
    per_class = len(labels) // 10
    order = np.argsort(labels, kind="stable")  # (10 * per_class,) grouped by class
    flat = images[order].reshape(len(order), -1).astype(np.float32)
    weights = (flat / np.linalg.norm(flat, axis=1, keepdims=True)).T  # (784, 10 * per_class)
    init = [
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat_shape"),
        numpy_helper.from_array(np.ascontiguousarray(weights), "templates"),
        numpy_helper.from_array(np.array([-1, 10, per_class], np.int64), "class_shape"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", [INPUT_NAME, "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "templates"], ["scores"]),
            helper.make_node("Reshape", ["scores", "class_shape"], ["by_class"]),
            helper.make_node("ReduceMax", ["by_class", "axes"], [OUTPUT_NAME], keepdims=0),
        ],
        "templates",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 28, 28])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 10])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray]:
    return source_digits()


@pytest.fixture(scope="module")
def field(source) -> dict[str, tuple[list[bytes], np.ndarray]]:
    """Every set, built once for the module: name -> (encoded images, labels)."""
    images, labels = source
    return {name: build_set(name, images, labels, N, SEED) for name in SPECS}


@pytest.fixture(scope="module")
def model(tmp_path_factory, source) -> Path:
    return template_model(tmp_path_factory.mktemp("onnx") / "templates.onnx", *source)


def opened(blob: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(blob))
    img.load()
    return img


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in px of a boolean ink mask: 2 x area / perimeter (a long
    stroke of width w and length L has area w L and perimeter about 2 L)."""
    mask = ink.astype(np.uint8) * 255
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return 2 * float(ink.sum()) / sum(cv2.arcLength(c, True) for c in contours)


def dark_ink(blob: bytes) -> np.ndarray:
    """The dark strokes of a drawing on light paper (Otsu threshold on grey)."""
    grey = np.asarray(opened(blob).convert("L"))
    _, ink = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return ink > 0


def height(ink: np.ndarray) -> int:
    rows = np.flatnonzero(ink.any(axis=1))
    return int(rows[-1] - rows[0] + 1)


def border(blob: bytes) -> np.ndarray:
    """The page colour: median RGB of the outermost 4 px frame."""
    rgb = np.asarray(opened(blob).convert("RGB"))
    frame = np.concatenate([rgb[:4].reshape(-1, 3), rgb[-4:].reshape(-1, 3),
                            rgb[:, :4].reshape(-1, 3), rgb[:, -4:].reshape(-1, 3)])  # fmt: skip
    return np.median(frame, axis=0)


# ---- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_same_seed_same_bytes_other_seed_other_images(name, source):
    images, labels = source
    blobs, first_labels = build_set(name, images, labels, 4, SEED)
    again, again_labels = build_set(name, images, labels, 4, SEED)
    assert again == blobs
    np.testing.assert_array_equal(again_labels, first_labels)
    other, _ = build_set(name, images, labels, 4, SEED + 1)
    assert not set(other) & set(blobs)  # not one image in common


def test_an_unknown_set_is_refused_with_the_known_ones(source):
    with pytest.raises(UserError, match="unknown set 'sketch'.*photo, marker, pen, canvas, fonts"):
        build_set("sketch", *source, n=2, seed=SEED)


def test_every_set_has_one_spec():
    # The generated sets each have a spec here; the real writers have theirs in writers.py.
    assert (*SPECS, "writers") == SETS and len(SPECS) == 5


# ---- each set's defining property ----------------------------------------------------------


def test_photos_are_jpegs_some_stored_rotated_with_an_exif_tag(field):
    blobs, _ = field["photo"]
    tags = [opened(b).getexif().get(EXIF_ORIENTATION) for b in blobs]
    assert all(opened(b).format == "JPEG" for b in blobs)
    assert set(tags) <= {None, *EXIF_STORED}
    tagged = sum(t is not None for t in tags)
    assert 0 < tagged < len(blobs), tags  # PHOTO.exif_share of them, about a third


PHOTO_WITHOUT_EXIF = dataclasses.replace(PHOTO, exif_share=0.0)
PHOTO_ALWAYS_EXIF = dataclasses.replace(PHOTO, exif_share=1.0)


@pytest.mark.parametrize("seed", range(4))
def test_the_exif_tag_undoes_the_rotation_the_pixels_are_stored_in(source, seed):
    digit = source[0][seed]
    upright = opened(fieldsets.photo(digit, np.random.default_rng(seed), PHOTO_WITHOUT_EXIF))
    stored = opened(fieldsets.photo(digit, np.random.default_rng(seed), PHOTO_ALWAYS_EXIF))
    assert upright.getexif().get(EXIF_ORIENTATION) is None
    assert stored.getexif().get(EXIF_ORIENTATION) in EXIF_STORED
    as_is = np.asarray(stored.convert("L"), dtype=np.float32)
    shown = np.asarray(ImageOps.exif_transpose(stored).convert("L"), dtype=np.float32)
    want = np.asarray(upright.convert("L"), dtype=np.float32)
    # Honouring the tag gives the upright photo back (up to JPEG noise at another quality) ...
    assert shown.shape == want.shape and np.abs(shown - want).mean() < 3
    # ... and ignoring it does not: the stored pixels are turned.
    assert as_is.shape != want.shape or np.abs(as_is - want).mean() > 10


def test_marker_strokes_are_thick_and_pen_strokes_thin(field):
    marker = [dark_ink(b) for b in field["marker"][0]]
    pen = [dark_ink(b) for b in field["pen"][0]]
    marker_share = [stroke_width(ink) / height(ink) for ink in marker]
    pen_share = [stroke_width(ink) / height(ink) for ink in pen]
    # The marker's brush is MARKER.stroke of the digit's height (which the ink box
    # underestimates, so the share measured is larger).
    assert min(marker_share) >= MARKER.stroke[0], marker_share
    # A pen's line is a few px on a page of hundreds: a small fraction of a marker's.
    assert max(pen_share) < min(marker_share) / 5, (pen_share, marker_share)
    assert max(stroke_width(ink) for ink in pen) < 4 * PEN.stroke_px[1]


def test_markers_draw_on_white_and_pens_on_tinted_paper(field):
    marker = [border(b) for b in field["marker"][0]]
    pen = [border(b) for b in field["pen"][0]]
    assert all((page >= 254).all() for page in marker), marker
    low = PEN.paper[0] - 2  # JPEG may shift a flat colour by a level or two
    assert all((page >= low).all() and page.min() < 254 for page in pen), pen
    assert len({tuple(page) for page in pen}) == len(pen)  # each page its own tint


def test_drawings_are_png_or_jpeg_as_the_spec_shares_them(field):
    formats = [opened(b).format for name in ("marker", "pen") for b in field[name][0]]
    assert set(formats) == {"PNG", "JPEG"}


def test_canvas_is_a_transparent_280px_png_with_light_strokes(field):
    for blob in field["canvas"][0]:
        img = opened(blob)
        assert (img.format, img.mode, img.size) == ("PNG", "RGBA", (CANVAS.side, CANVAS.side))
        rgba = np.asarray(img)
        alpha = rgba[..., 3]
        assert (alpha == 0).mean() > 0.5 and alpha.max() == 255  # clear page, opaque strokes
        assert (rgba[alpha > 0, :3] == 255).all()  # white ink, as the draw page draws
        lo, hi = CANVAS.stroke_px
        assert lo / 2 <= stroke_width(alpha >= 128) <= 1.5 * hi


def test_fonts_are_typed_in_the_field_fonts_only_with_random_labels(source, monkeypatch):
    opened_fonts: list[str] = []
    real = ImageFont.truetype

    def recording(font, *args, **kwargs):
        opened_fonts.append(Path(font).name)
        return real(font, *args, **kwargs)

    monkeypatch.setattr(ImageFont, "truetype", recording)
    images = np.zeros((3, 28, 28), np.uint8)  # no source digits: labels come from the rng
    blobs, labels = build_set("fonts", images, np.zeros(3, np.int64), 40, SEED)
    assert len(blobs) == len(opened_fonts) == 40
    assert set(opened_fonts) <= set(FIELD_FONTS) and len(set(opened_fonts)) > 1
    assert len(set(labels.tolist())) >= 8  # random digits, not the source labels
    other = build_set("fonts", images, np.zeros(3, np.int64), 40, SEED + 1)[1]
    assert not np.array_equal(labels, other)
    assert all(opened(b).format == "PNG" for b in blobs)


# ---- labels and scoring --------------------------------------------------------------------


def direct(model: Path, blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """What the service does, one request at a time: preprocess, then ONNX Runtime."""
    session = inference_session(model)
    inputs = np.zeros((len(blobs), 28, 28), np.float32)
    predictions = np.full(len(blobs), -1)
    for i, blob in enumerate(blobs):
        try:
            inputs[i] = preprocess_image(blob)
        except ImageError:
            continue
        logits = session.run(None, {INPUT_NAME: inputs[i : i + 1]})[0]
        predictions[i] = int(logits.argmax())
    return inputs, predictions


@pytest.mark.parametrize("name", SPECS)
def test_scores_match_preprocessing_plus_onnx_runtime_and_labels_match_images(
    name, field, model, tmp_path
):
    blobs, labels = field[name]
    blank = Image.new("L", (64, 64), 255)  # no ink: the service answers 422
    buffer = io.BytesIO()
    blank.save(buffer, format="PNG")
    blobs = [*blobs, buffer.getvalue()]
    labels = np.append(labels, 0)
    inputs, predictions = direct(model, blobs)

    score = score_set(model, blobs, labels)

    np.testing.assert_array_equal(score.predictions, predictions)
    np.testing.assert_array_equal(score.inputs, inputs)
    assert score.refused == 1 and score.predictions[-1] == -1
    assert score.accuracy == pytest.approx(float((predictions == labels).mean()))
    # The images show the digits their labels say: a template matcher reads most of
    # them (a shuffled label would be right one time in ten).
    assert score.accuracy >= 0.75, (labels, predictions)
    plot = tmp_path / f"field_{name}.png"
    plot_failures(blobs, score, name, plot)
    assert opened(plot.read_bytes()).format == "PNG"
