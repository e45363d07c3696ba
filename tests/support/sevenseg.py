"""Digits as a seven-segment display shows them (a meter, a clock, a price tag), photographed
flat: a style users do send and MNIST never had, so a model trained on MNIST misreads
many of them, confidently (9, 6, 2, 3 and 8 above all).

Each image: the digit's lit segments as the usual pointed hexagons with small gaps between
them, slanted like most displays, dark on light paper of any tint, any size and place, as
a PNG. Seeded and deterministic.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

# Segment -> its ends on a 1 x 2 cell: a top, b top right, c bottom right, d bottom,
# e bottom left, f top left, g middle.
SEGMENTS = {
    "a": (0, 0, 1, 0), "b": (1, 0, 1, 1), "c": (1, 1, 1, 2), "d": (0, 2, 1, 2),
    "e": (0, 1, 0, 2), "f": (0, 0, 0, 1), "g": (0, 1, 1, 1),
}  # fmt: skip
LIT = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg",
    5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}  # fmt: skip


def _segment(ends: tuple[int, int, int, int], width: float, height: float, thick: float,
             gap: float) -> list[tuple[float, float]]:  # fmt: skip
    """The pointed hexagon of one segment, in cell pixels, shortened by ``gap`` at each end."""
    u0, v0, u1, v1 = ends
    ax, ay, bx, by = u0 * width, v0 * height / 2, u1 * width, v1 * height / 2
    h = thick / 2
    if v0 == v1:  # horizontal
        ax, bx = ax + gap, bx - gap
        return [(ax, ay), (ax + h, ay - h), (bx - h, by - h), (bx, by), (bx - h, by + h),
                (ax + h, ay + h)]  # fmt: skip
    ay, by = ay + gap, by - gap
    return [(ax, ay), (ax + h, ay + h), (bx + h, by - h), (bx, by), (bx - h, by - h),
            (ax - h, ay + h)]  # fmt: skip


def sevenseg(digit: int, rng: np.random.Generator) -> bytes:
    """One PNG of ``digit`` on a seven-segment display."""
    side = int(rng.integers(160, 360))
    height = rng.uniform(0.4, 0.7) * side
    width = height * rng.uniform(0.5, 0.7)
    thick = height * rng.uniform(0.08, 0.14)
    gap = thick * rng.uniform(0.1, 0.4)
    slant = np.tan(np.radians(rng.uniform(0, 12)))
    x0 = rng.uniform(thick, side - width - thick - slant * height)
    y0 = rng.uniform(thick, side - height - thick)
    paper = tuple(int(v) for v in rng.uniform(200, 255, 3))
    ink = tuple(int(v) for v in rng.uniform(0, 70, 3))
    img = Image.new("RGB", (side, side), paper)
    draw = ImageDraw.Draw(img)
    for name in LIT[digit]:
        points = _segment(SEGMENTS[name], width, height, thick, gap)
        draw.polygon([(x0 + x + slant * (height - y), y0 + y) for x, y in points], fill=ink)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def batch(n: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """``n`` seven-segment PNGs (each digit equally often, shuffled) and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    return [sevenseg(int(d), rng) for d in labels], labels.astype(np.int64)
