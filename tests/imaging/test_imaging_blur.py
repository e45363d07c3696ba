"""imaging: a blurred digit (a small scan blown up, a soft photo) keeps its strokes' width.

A blurred stroke fades over many pixels, and a threshold low on that ramp takes the halo
for ink: strokes come out fat and a 9's small loop closes into a blob (issue 18, the
'writers' field set). The ink ends where the stroke is half as strong as its own peak.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from mnist_mlops import imaging

NINE = [(0.62, 0.45), (0.62, 0.95)]  # the stem below the loop (fractions of the cell)


def small_nine(cell: int) -> np.ndarray:
    """A 9 drawn into ``cell`` x ``cell`` pixels, ink 1.0 on 0.0, its loop a small hole."""
    side = cell * 8
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    width = side // 9
    draw.ellipse([side * 0.3, side * 0.06, side * 0.66, side * 0.48], outline=255, width=width)
    draw.line([(x * side, y * side) for x, y in NINE], fill=255, width=width)
    small = img.resize((cell, cell), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def scanned(cell: np.ndarray, side: int, blur: float, grain: float, seed: int = 0) -> bytes:
    """The cell blown up smoothly to ``side`` px, dark ink on a larger grey page, blurred."""
    rng = np.random.default_rng(seed)
    ink = cv2.resize(cell, (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    page = np.zeros((2 * side, 2 * side), np.float32)
    page[side // 3 : side // 3 + side, side // 2 : side // 2 + side] = ink
    grey = 230.0 * (1 - page) + 40.0 * page + rng.normal(0, grain, page.shape)
    out = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), "L")
    out = out.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    out.save(buffer, format="PNG")
    return buffer.getvalue()


def holes(pixels: np.ndarray) -> int:
    """Background regions of the model input enclosed by ink (a 9 has one, a blob none)."""
    background = (pixels < 128).astype(np.uint8)
    n, labels = cv2.connectedComponents(background, connectivity=4)
    edge = set(labels[0]) | set(labels[-1]) | set(labels[:, 0]) | set(labels[:, -1])
    return len(set(range(1, n)) - edge)


@pytest.mark.parametrize(("cell", "side"), [(8, 200), (10, 120), (10, 200), (12, 120), (16, 160)])
@pytest.mark.parametrize("blur", [0.5, 1.5, 3.0])
@pytest.mark.parametrize("grain", [0.0, 5.0])
def test_a_small_blurred_nine_keeps_its_loop_open(cell, side, blur, grain):
    """An 8x8-cell 9 (UCI optdigits' size) blown up to 200 px closed in every blur before."""
    pixels = imaging.preprocess_image(scanned(small_nine(cell), side, blur, grain))
    assert holes(pixels) == 1, "the 9's loop closed (or split) in the model input"


@pytest.mark.parametrize("blur", [1.5, 3.0])
def test_blur_does_not_fatten_the_strokes(blur):
    sharp = imaging.preprocess_image(scanned(small_nine(16), 160, 0.3, 0.0))
    soft = imaging.preprocess_image(scanned(small_nine(16), 160, blur, 0.0))
    ratio = float((soft >= 128).sum()) / float((sharp >= 128).sum())
    assert 0.8 <= ratio <= 1.25, f"ink area x{ratio:.2f} once blurred"
