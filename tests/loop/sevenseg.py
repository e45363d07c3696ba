"""Digits as a seven-segment display shows them (a meter, a clock, a price tag), photographed
flat: a style users do send and MNIST never had, so the default model misreads many.

Each image: the segments of the digit as slanted bars with gaps between them, dark on
light paper of any tint, any size and place, as a PNG. Seeded and deterministic.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

# Segment -> (x0, y0, x1, y1) on a 1 x 2 cell: a top, b top right, c bottom right,
# d bottom, e bottom left, f top left, g middle.
SEGMENTS = {
    "a": (0, 0, 1, 0), "b": (1, 0, 1, 1), "c": (1, 1, 1, 2), "d": (0, 2, 1, 2),
    "e": (0, 1, 0, 2), "f": (0, 0, 0, 1), "g": (0, 1, 1, 1),
}  # fmt: skip
LIT = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg",
    5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}  # fmt: skip


def sevenseg(digit: int, rng: np.random.Generator) -> bytes:
    """One PNG of ``digit`` on a seven-segment display."""
    side = int(rng.integers(160, 360))
    height = rng.uniform(0.4, 0.8) * side
    width = height * rng.uniform(0.45, 0.6)
    thick = height * rng.uniform(0.07, 0.13)
    gap = thick * rng.uniform(0.2, 0.6)
    slant = np.tan(np.radians(rng.uniform(0, 12)))
    x0 = rng.uniform(thick, side - width - thick - slant * height)
    y0 = rng.uniform(thick, side - height - thick)
    paper = tuple(int(v) for v in rng.uniform(200, 255, 3))
    ink = tuple(int(v) for v in rng.uniform(0, 70, 3))
    img = Image.new("RGB", (side, side), paper)
    draw = ImageDraw.Draw(img)

    def point(u: float, v: float) -> tuple[float, float]:
        y = y0 + v * height / 2
        return x0 + u * width + slant * (y0 + height - y), y

    for name in LIT[digit]:
        u0, v0, u1, v1 = SEGMENTS[name]
        horizontal = v0 == v1
        du, dv = (gap / width, 0.0) if horizontal else (0.0, 2 * gap / height)
        a, b = point(u0 + du, v0 + dv), point(u1 - du, v1 - dv)
        draw.line([a, b], fill=ink, width=max(2, round(thick)))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def batch(n: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """``n`` seven-segment PNGs (each digit equally often, shuffled) and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    return [sevenseg(int(d), rng) for d in labels], labels.astype(np.int64)
