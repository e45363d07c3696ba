"""From the digit's mask to an MNIST-style 28x28 field, with MNIST's stroke width.

MNIST was made from binary NIST scans: each digit was scaled, anti-aliased, into
a 20x20 box and centred by mass in 28x28. A thin pen and a thick marker give the
same digit very different strokes, and an MLP sees only pixels, so the stroke is
also brought to MNIST's typical width before the final anti-aliased downscale:

1. crop the digit and bring it to a working size (:data:`WORK_MIN`..:data:`WORK_MAX`);
2. binarise, measure the stroke width (2 x area / perimeter), erode or dilate
   (3x3 erosion / dilation) towards :data:`TARGET_WIDTH`;
3. downscale into 20x20 by area averaging (MNIST's anti-aliasing), centre by mass.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 28  # MNIST field
BOX = 20  # the digit's longer side after scaling, as in MNIST
WORK_MIN, WORK_MAX = 80, 160  # the longer side while the stroke is measured and reshaped
# Stroke width as a fraction of the digit's longer side: the median of stroke_width() over
# 2,000 MNIST training digits taken through the same crop/work-size/threshold steps
# (quartiles 0.083 and 0.118; the perimeter count under-reads diagonals, equally for all).
TARGET_WIDTH = 0.098
TOLERANCE = 0.2  # within +-20 % of the target (MNIST's middle half), the stroke is left as is


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 x area / perimeter (perimeter = 4-neighbour edges)."""
    area = float(mask.sum())
    if area == 0:
        return 0.0
    m = np.pad(mask, 1).astype(np.int8)
    edges = np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum()
    return 2.0 * area / max(float(edges), 1.0)


def _to_work_size(digit: np.ndarray) -> np.ndarray:
    """Resize the cropped ink (0..1) so the longer side is within WORK_MIN..WORK_MAX."""
    height, width = digit.shape
    side = min(max(max(height, width), WORK_MIN), WORK_MAX)
    scale = side / max(height, width)
    if scale == 1.0:
        return digit
    return _resize(digit, scale)


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    """Scale a float32 image: area averaging to shrink (MNIST's anti-aliasing), else bilinear."""
    height, width = img.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img, dtype=np.float32), size, interpolation=method)


def normalise_stroke(mask: np.ndarray) -> np.ndarray:
    """Erode or dilate a binary digit towards TARGET_WIDTH x its longer side."""
    target = TARGET_WIDTH * max(mask.shape)
    width = stroke_width(mask)
    steps = round((width - target) / 2)  # one 3x3 step changes the width by 2 px
    if abs(width - target) <= TOLERANCE * target or steps == 0:
        return mask
    img = np.pad(mask, abs(steps) + 1).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    if steps < 0:
        return cv2.dilate(img, kernel, iterations=-steps) > 0
    for _ in range(steps):
        eroded = cv2.erode(img, kernel)
        if not eroded.any():
            break  # never erode a digit away
        img = eroded
    return img > 0


def _crop(mask: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_box(digit: np.ndarray) -> np.ndarray:
    """Scale 0..255 ink so the longer side is BOX pixels, keeping the aspect ratio."""
    resized = _resize(digit, BOX / max(digit.shape))
    return np.clip(resized, 0.0, 255.0)


def centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place in SIZE x SIZE so the centre of mass lands on the centre, to a fraction of a pixel.

    A whole-pixel shift flips between two places when the centre falls near .5,
    and a JPEG speck or a rotated copy then moves the digit a whole pixel; a
    bilinear sub-pixel shift moves it smoothly instead.
    """
    height, width = digit.shape
    total = float(digit.sum(dtype=np.float64))
    if total > 0:
        com_r = float((digit.sum(axis=1, dtype=np.float64) * np.arange(height)).sum()) / total
        com_c = float((digit.sum(axis=0, dtype=np.float64) * np.arange(width)).sum()) / total
    else:  # only possible if resizing wiped a tiny speck; centre the box instead
        com_r, com_c = (height - 1) / 2, (width - 1) / 2
    # Clamp so a lopsided digit is shifted as far as it can go but never cut off.
    top = min(max(SIZE / 2 - com_r, 0.0), float(SIZE - height))
    left = min(max(SIZE / 2 - com_c, 0.0), float(SIZE - width))
    shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top]])
    return cv2.warpAffine(
        np.ascontiguousarray(digit, dtype=np.float32), shift, (SIZE, SIZE),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
    )  # fmt: skip


def mnist_field(ink: np.ndarray) -> np.ndarray:
    """The cropped digit mask (0/1 floats) -> centred MNIST-style float32 (28, 28), 0..255."""
    work = _to_work_size(ink)
    mask = _crop(normalise_stroke(work >= 0.5))
    return centre_by_mass(fit_box(mask.astype(np.float32) * 255.0))
