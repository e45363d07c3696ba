"""Realistic test images built from the MNIST *test* split: what users actually send.

Each generator returns encoded image bytes (PNG / JPEG, as a client uploads them)
and labels, seeded and deterministic. They are meant to be as hard as real
photos and drawings, not tuned to what a model gets right. Each set draws every
random choice from its spec in :mod:`mnist_mlops.evaluation.fieldspecs`:

- ``photo``: the digit in ink or pencil on grainy, tinted paper, photographed: a
  lighting gradient, a soft shadow across part of the page, sometimes a ruled
  line, rotation, off-centre, blur, JPEG at phone-like quality, and some carry an
  EXIF orientation tag the decoder must honour (the pixels are stored rotated,
  as a phone does);
- ``marker``: redrawn with a thick marker on a large white canvas;
- ``pen``: redrawn with a thin pen on a large, slightly tinted canvas;
- ``canvas``: light strokes on a transparent square PNG, as the /ui page makes
  them, of any width, size and position;
- ``fonts``: the digit typed in one of matplotlib's bundled DejaVu fonts (no
  system fonts), any size, off-centre, slightly rotated; labels are random;
- ``writers``: real handwriting by 43 writers that no generator of ours made (UCI
  optdigits, :mod:`mnist_mlops.evaluation.writers`), all 1,797 digits, whatever ``n``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fonts import font_dir
from mnist_mlops.evaluation.fieldspecs import (
    CANVAS,
    FONTS,
    MARGIN,
    MARKER,
    PEN,
    PHOTO,
    SPECS,
    CanvasSpec,
    DrawnSpec,
    PhotoSpec,
    TypedSpec,
)
from mnist_mlops.evaluation.redraw import encode, paste_rotated, stroke_mask
from mnist_mlops.evaluation.writers import writers_set

# The generated sets, then the real writers (their spec is writers.SPEC); the order seeds
# each set's random stream, so a new set goes at the end.
SETS = (*SPECS, "writers")
# EXIF orientation tag value -> how the stored pixels are turned from upright.
EXIF_STORED = {
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}
EXIF_ORIENTATION = 0x0112


def _centre(rng: np.random.Generator, size: int, w: int, h: int) -> tuple[float, float]:
    margin = size * MARGIN
    return (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))


def photo(digit: np.ndarray, rng: np.random.Generator, spec: PhotoSpec = PHOTO) -> bytes:
    """A phone photo of the digit written on paper (see the module docstring)."""
    w, h = int(rng.integers(*spec.page_px)), int(rng.integers(*spec.page_px))
    size = int(rng.uniform(*spec.digit) * min(w, h))
    mask = stroke_mask(digit, size, rng.uniform(*spec.stroke) * size)
    centre = _centre(rng, size, w, h)
    ink = paste_rotated((w, h), mask, rng.uniform(*spec.rotation_deg), centre)
    paper = rng.uniform(*spec.paper, 3) * rng.uniform(*spec.paper_tint, 3)
    ink_rgb = (
        rng.uniform(*spec.ink)
        * rng.uniform(*spec.ink_tint, 3)
        * np.array([1, 1, rng.uniform(*spec.ink_blue)])
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h) * rng.uniform(*spec.light_falloff)
    light = 1.0 - (ramp - ramp.min())
    if rng.random() < spec.shadow_share:
        sa = rng.uniform(0, 2 * np.pi)
        edge = np.cos(sa) * (xx - w * rng.uniform(*spec.shadow_edge)) + np.sin(sa) * (
            yy - h * rng.uniform(*spec.shadow_edge)
        )
        depth = rng.uniform(*spec.shadow_depth)
        light *= 1.0 - depth / (1 + np.exp(-edge / rng.uniform(*spec.shadow_softness)))
    img = paper * (1 - ink[..., None]) + ink_rgb * ink[..., None]
    if rng.random() < spec.ruled_share:
        y0 = int(rng.uniform(*spec.ruled_at) * h)
        img[y0 : y0 + int(rng.integers(*spec.ruled_px))] *= np.array(spec.ruled_tint)
    img = img * light[..., None] + rng.normal(0, rng.uniform(*spec.noise_sd), (h, w, 1))
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(*spec.blur)))
    exif = Image.Exif()
    if rng.random() < spec.exif_share:
        tag = int(rng.choice(list(EXIF_STORED)))
        out = out.transpose(EXIF_STORED[tag])
        exif[EXIF_ORIENTATION] = tag
    return encode(out, "JPEG", quality=int(rng.integers(*spec.jpeg_quality)), exif=exif.tobytes())


def drawn(digit: np.ndarray, rng: np.random.Generator, spec: DrawnSpec) -> bytes:
    """The digit redrawn with one tool on a square canvas (marker, pen)."""
    w = h = int(rng.integers(*spec.canvas_px))
    size = int(rng.uniform(*spec.digit) * w)
    if spec.stroke is not None:
        width = max(1.0, rng.uniform(*spec.stroke) * size)
    else:
        width = rng.uniform(*spec.stroke_px)
    mask = stroke_mask(digit, size, width)
    centre = _centre(rng, size, w, h)
    ink = paste_rotated((w, h), mask, rng.uniform(*spec.rotation_deg), centre)
    paper = rng.uniform(*spec.paper, 3) if spec.paper is not None else np.full(3, 255.0)
    colour = rng.uniform(*spec.ink, 3) * np.array([1, 1, rng.uniform(*spec.ink_blue)])
    # Blended only where the ink is: elsewhere the blend is the paper exactly, and the
    # whole-canvas float64 blend was half of building a marker or pen image.
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = np.clip(paper, 0, 255).astype(np.uint8)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if len(rows):
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        alpha = ink[box][..., None]
        img[box] = np.clip(paper * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    out = Image.fromarray(img, "RGB")
    if rng.random() < spec.jpeg_share:
        return encode(out, "JPEG", quality=int(rng.integers(*spec.jpeg_quality)))
    return encode(out, "PNG")


def marker(digit: np.ndarray, rng: np.random.Generator, spec: DrawnSpec = MARKER) -> bytes:
    """A thick marker on a large white canvas."""
    return drawn(digit, rng, spec)


def pen(digit: np.ndarray, rng: np.random.Generator, spec: DrawnSpec = PEN) -> bytes:
    """A thin pen on a large, slightly tinted canvas."""
    return drawn(digit, rng, spec)


def canvas(digit: np.ndarray, rng: np.random.Generator, spec: CanvasSpec = CANVAS) -> bytes:
    """White strokes on a transparent square PNG, as the draw page makes them."""
    side = spec.side
    size = int(rng.uniform(*spec.digit) * side)
    mask = stroke_mask(digit, size, rng.uniform(*spec.stroke_px))
    centre = _centre(rng, size, side, side)
    alpha = paste_rotated((side, side), mask, rng.uniform(*spec.rotation_deg), centre)
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.clip(alpha * 255, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def typed(label: int, rng: np.random.Generator, spec: TypedSpec = FONTS) -> bytes:
    """The digit typed in one of the spec's fonts, any size and place, slightly rotated."""
    font_path = font_dir() / spec.fonts[int(rng.integers(len(spec.fonts)))]
    size = int(rng.integers(*spec.size_px))
    font = ImageFont.truetype(str(font_path), size)
    (wa, wb), (wc, wd) = spec.width
    (ha, hb), (hc, hd) = spec.height
    w, h = (
        int(rng.integers(wa * size + wb, wc * size + wd)),
        int(rng.integers(ha * size + hb, hc * size + hd)),
    )
    glyph = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(glyph).text((size, size), str(label), fill=255, font=font, anchor="mm")
    glyph = glyph.crop(glyph.getbbox())
    ink = paste_rotated(
        (w, h), glyph, rng.uniform(*spec.rotation_deg),
        (rng.uniform(glyph.width / 2 + 1, w - glyph.width / 2 - 1),
         rng.uniform(glyph.height / 2 + 1, h - glyph.height / 2 - 1)),
    )  # fmt: skip
    gray = np.clip(255 * (1 - ink), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(gray, "L"), "PNG")


# The sets drawn from a source digit ("fonts" types a random label instead).
GENERATORS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "photo": photo,
    "marker": marker,
    "pen": pen,
    "canvas": canvas,
}


def build_set(
    name: str, images: np.ndarray, labels: np.ndarray, n: int, seed: int
) -> tuple[list[bytes], np.ndarray]:
    """``n`` encoded images of set ``name`` from the test split, and their labels."""
    if name not in SETS:
        raise UserError(f"field.sets: unknown set {name!r}; known sets are {', '.join(SETS)}")
    if name == "writers":  # real handwriting, all of it: not drawn from the test split
        return writers_set(seed)
    rng = np.random.default_rng([seed, SETS.index(name)])
    if name == "fonts":
        ys = rng.integers(0, 10, n)
        return [typed(int(y), rng) for y in ys], ys.astype(np.int64)
    picks = rng.choice(len(images), size=n, replace=False)
    make = GENERATORS[name]
    return [make(images[i], rng) for i in picks], labels[picks].astype(np.int64)
