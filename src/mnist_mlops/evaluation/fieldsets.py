"""Realistic test images built from the MNIST *test* split: what users actually send.

Each generator returns encoded image bytes (PNG / JPEG, as a client uploads them)
and labels, seeded and deterministic. They are meant to be as hard as real
photos and drawings, not tuned to what a model gets right:

- ``photo``: the digit in ink or pencil on grainy, tinted paper, photographed: a
  lighting gradient, a soft shadow across part of the page, sometimes a ruled
  line, rotation, off-centre, blur, JPEG at phone-like quality, and in a third
  of them an EXIF orientation tag the decoder must honour (the pixels are
  stored rotated, as a phone does);
- ``marker``: redrawn with a thick marker on a large white canvas;
- ``pen``: redrawn with a thin pen (1-3 px) on a large, slightly tinted canvas;
- ``canvas``: light strokes on a transparent 280x280 PNG, as the /ui page makes
  them, of any width, size and position;
- ``fonts``: the digit typed in one of matplotlib's bundled DejaVu fonts (no
  system fonts), any size, off-centre, slightly rotated; labels are random;
- ``writers``: real handwriting by 43 writers that no generator of ours made (UCI
  optdigits, :mod:`mnist_mlops.evaluation.writers`), all 1,797 digits, whatever ``n``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fonts import FIELD_FONTS, font_dir
from mnist_mlops.evaluation.writers import writers_set

SETS = ("photo", "marker", "pen", "canvas", "fonts", "writers")
# EXIF orientation tag value -> how the stored pixels are turned from upright.
_EXIF_STORED = {
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}
_BASE = 112  # strokes are reshaped at 4x MNIST's size, then scaled up


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean mask to a connected 1 px centre line (numpy)."""
    img = mask.astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = np.pad(img, 1)
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:],
                 p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]  # fmt: skip
            count = sum(x.astype(np.int32) for x in n)
            ring = n + [n[0]]
            turns = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            a, b = (n[2], n[4]) if step == 0 else (n[0], n[6])
            c1 = (n[0] * n[2] * n[4] == 0) if step == 0 else (n[0] * n[2] * n[6] == 0)
            c2 = (a * n[4] * n[6] == 0) if step == 0 else (n[0] * b * n[4] == 0)
            drop = (img == 1) & (count >= 2) & (count <= 6) & (turns == 1) & c1 & c2
            if drop.any():
                img[drop] = 0
                changed = True
    return img.astype(bool)


def stroke_mask(digit: np.ndarray, height: int, width_px: float | None) -> Image.Image:
    """An MNIST digit as an L mask ``height`` px tall, restroked to ``width_px`` (None: as is).

    The digit's centre line (thinned at 4x MNIST's size) is scaled up and drawn
    with a round-ish brush of the wanted width: the same digit as a pen or a
    marker would draw it.
    """
    base = Image.fromarray(digit.astype(np.uint8), "L").resize(
        (_BASE, _BASE), Image.Resampling.BICUBIC
    )
    mask = np.asarray(base) >= 110
    if width_px is None:
        big = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (height, height), Image.Resampling.BILINEAR
        )
        return big.point(lambda v: 255 if v >= 128 else 0).filter(ImageFilter.GaussianBlur(0.6))
    line = Image.fromarray(skeleton(mask).astype(np.uint8) * 255)
    scale = height / _BASE
    if width_px >= 2 * scale:  # wide: draw the brush at base size, then scale up
        for _ in range(round((width_px / scale - 1) / 2)):
            line = line.filter(ImageFilter.MaxFilter(3))
        big = line.resize((height, height), Image.Resampling.BILINEAR)
        big = big.point(lambda v: 255 if v >= 128 else 0)
    else:  # thin: scale the 1 px line up (it gets ~scale px wide), then erode to the width
        big = line.resize((height, height), Image.Resampling.BILINEAR).point(
            lambda v: 255 if v >= 64 else 0
        )
        for _ in range(round((scale - width_px) / 2)):
            eroded = big.filter(ImageFilter.MinFilter(3))
            if np.asarray(eroded).sum() < 0.3 * np.asarray(big).sum():
                break
            big = eroded
    return big.filter(ImageFilter.GaussianBlur(0.6))  # a pen's soft edge


def _paste_rotated(canvas_size, mask, angle, centre) -> np.ndarray:
    """The mask rotated by ``angle`` and placed at ``centre`` of a canvas, as float 0..1."""
    rotated = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    layer = Image.new("L", canvas_size, 0)
    layer.paste(
        rotated, (round(centre[0] - rotated.width / 2), round(centre[1] - rotated.height / 2))
    )
    return np.asarray(layer, dtype=np.float32) / 255.0


def photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A phone photo of the digit written on paper (see the module docstring)."""
    w, h = int(rng.integers(480, 900)), int(rng.integers(480, 900))
    size = int(rng.uniform(0.3, 0.7) * min(w, h))
    mask = stroke_mask(digit, size, rng.uniform(0.05, 0.12) * size)
    margin = size * 0.45
    centre = (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))
    ink = _paste_rotated((w, h), mask, rng.uniform(-15, 15), centre)
    paper = rng.uniform(170, 250, 3) * rng.uniform(0.9, 1.0, 3)
    # Ink from black marker to grey pencil (pencil on dim paper is barely 60 levels darker).
    ink_rgb = (
        rng.uniform(10, 120) * rng.uniform(0.8, 1.0, 3) * np.array([1, 1, rng.uniform(1, 1.6)])
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h) * rng.uniform(0.15, 0.45)
    light = 1.0 - (ramp - ramp.min())
    if rng.random() < 0.6:  # a soft shadow (a hand or a phone) over part of the page
        sa = rng.uniform(0, 2 * np.pi)
        edge = np.cos(sa) * (xx - w * rng.uniform(0.2, 0.8)) + np.sin(sa) * (
            yy - h * rng.uniform(0.2, 0.8)
        )
        light *= 1.0 - rng.uniform(0.2, 0.45) / (1 + np.exp(-edge / rng.uniform(8, 40)))
    img = paper * (1 - ink[..., None]) + ink_rgb * ink[..., None]
    if rng.random() < 0.35:  # a ruled line of the notebook, light blue, through the page
        y0 = int(rng.uniform(0.1, 0.9) * h)
        img[y0 : y0 + int(rng.integers(1, 4))] *= np.array([0.75, 0.85, 1.0])
    img = img * light[..., None] + rng.normal(0, rng.uniform(3, 10), (h, w, 1))
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.8)))
    exif = Image.Exif()
    if rng.random() < 1 / 3:
        tag = int(rng.choice(list(_EXIF_STORED)))
        out = out.transpose(_EXIF_STORED[tag])
        exif[0x0112] = tag
    return encode(out, "JPEG", quality=int(rng.integers(55, 90)), exif=exif.tobytes())


def _drawn(
    digit, rng, width_frac: tuple[float, float], canvas: tuple[int, int], tint: bool
) -> bytes:
    w = h = int(rng.integers(*canvas))
    size = int(rng.uniform(0.35, 0.85) * w)
    width = (
        max(1.0, rng.uniform(*width_frac) * size) if width_frac[0] < 1 else rng.uniform(*width_frac)
    )
    mask = stroke_mask(digit, size, width)
    margin = size * 0.45
    centre = (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))
    ink = _paste_rotated((w, h), mask, rng.uniform(-10, 10), centre)
    paper = rng.uniform(225, 255, 3) if tint else np.full(3, 255.0)
    colour = rng.uniform(0, 80, 3) * np.array([1, 1, rng.uniform(1, 3)])
    img = paper * (1 - ink[..., None]) + colour * ink[..., None]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        return encode(out, "JPEG", quality=int(rng.integers(70, 95)))
    return encode(out, "PNG")


def marker(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A thick marker (13-20 % of the digit's height) on a large white canvas."""
    return _drawn(digit, rng, (0.13, 0.20), (700, 1400), tint=False)


def pen(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A thin pen (1-3 px) on a large, slightly tinted canvas."""
    return _drawn(digit, rng, (1.0, 3.0), (600, 1200), tint=True)


def canvas(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Light strokes on a transparent 280x280 PNG, as the draw page makes them."""
    side = 280
    size = int(rng.uniform(0.4, 0.95) * side)
    mask = stroke_mask(digit, size, rng.uniform(6, 24))
    margin = size * 0.45
    centre = (rng.uniform(margin, side - margin), rng.uniform(margin, side - margin))
    alpha = _paste_rotated((side, side), mask, rng.uniform(-8, 8), centre)
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.clip(alpha * 255, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def typed(label: int, rng: np.random.Generator) -> bytes:
    """The digit typed in a DejaVu font, any size and place, slightly rotated."""
    font_path = font_dir() / FIELD_FONTS[int(rng.integers(len(FIELD_FONTS)))]
    size = int(rng.integers(40, 220))
    font = ImageFont.truetype(str(font_path), size)
    w, h = int(rng.integers(size + 40, 3 * size + 80)), int(rng.integers(size + 60, 2 * size + 120))
    glyph = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(glyph).text((size, size), str(label), fill=255, font=font, anchor="mm")
    glyph = glyph.crop(glyph.getbbox())
    ink = _paste_rotated(
        (w, h), glyph, rng.uniform(-8, 8),
        (rng.uniform(glyph.width / 2 + 1, w - glyph.width / 2 - 1),
         rng.uniform(glyph.height / 2 + 1, h - glyph.height / 2 - 1)),
    )  # fmt: skip
    gray = np.clip(255 * (1 - ink), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(gray, "L"), "PNG")


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
