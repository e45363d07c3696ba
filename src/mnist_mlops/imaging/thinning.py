"""A digit's centre line: what a pen or a marker traces, whatever width the scan's stroke had.

Redrawing a digit with another tool (the field sets' marker and pen, the prepare stage's
brushed digits) starts from its centre line and strokes it with the tool's width.
Numpy only, so it ships wherever :mod:`mnist_mlops.imaging` does.
"""

from __future__ import annotations

import numpy as np


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
