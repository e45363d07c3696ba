"""Redraw an MNIST digit as a pen or a marker would, and place it on a page.

The field sets (:mod:`mnist_mlops.evaluation.fieldsets`) need the *same* digit
drawn with a different tool: its centre line (thinned at 4x MNIST's size) is
scaled up and stroked with a brush of the wanted width. These are the drawing
primitives; which widths, sizes and angles each set draws from is the sets' spec.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from mnist_mlops.imaging.thinning import skeleton

BASE_PX = 112  # strokes are reshaped at 4x MNIST's size, then scaled up
INK_LEVEL = 110  # an MNIST pixel (0..255, at BASE_PX) at least this bright is part of the stroke
EDGE_BLUR = 0.6  # Gaussian radius (px) of a pen's soft edge
# zlib level of the sets' PNGs: the pixels are the same at any level, and Pillow's default (6)
# spent 60 % of the writers set's build compressing noisy paper (issue 18).
PNG_LEVEL = 1


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    """The image as a client uploads it: encoded bytes in ``fmt`` (PNG, JPEG)."""
    if fmt == "PNG":
        options = {"compress_level": PNG_LEVEL} | options
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def stroke_mask(digit: np.ndarray, height: int, width_px: float | None) -> Image.Image:
    """An MNIST digit as an L mask ``height`` px tall, restroked to ``width_px`` (None: as is).

    The digit's centre line (thinned at 4x MNIST's size) is scaled up and drawn
    with a round-ish brush of the wanted width: the same digit as a pen or a
    marker would draw it.
    """
    base = Image.fromarray(digit.astype(np.uint8), "L").resize(
        (BASE_PX, BASE_PX), Image.Resampling.BICUBIC
    )
    mask = np.asarray(base) >= INK_LEVEL
    if width_px is None:
        big = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (height, height), Image.Resampling.BILINEAR
        )
        return big.point(lambda v: 255 if v >= 128 else 0).filter(
            ImageFilter.GaussianBlur(EDGE_BLUR)
        )
    line = Image.fromarray(skeleton(mask).astype(np.uint8) * 255)
    scale = height / BASE_PX
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
            # An erosion that would wipe out most of the line stops the thinning.
            if np.asarray(eroded).sum() < 0.3 * np.asarray(big).sum():
                break
            big = eroded
    return big.filter(ImageFilter.GaussianBlur(EDGE_BLUR))


def paste_rotated(
    canvas_size: tuple[int, int], mask: Image.Image, angle: float, centre: tuple[float, float]
) -> np.ndarray:
    """The mask rotated by ``angle`` degrees, placed at ``centre`` of a canvas, as float 0..1."""
    rotated = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    layer = Image.new("L", canvas_size, 0)
    layer.paste(
        rotated, (round(centre[0] - rotated.width / 2), round(centre[1] - rotated.height / 2))
    )
    return np.asarray(layer, dtype=np.float32) / 255.0
