"""Find the digit's ink in a photo or drawing: background, threshold, components.

A photo of a digit on paper is mostly paper: grain, a lighting gradient, maybe a
shadow, a ruled line or the edge of the sheet. :func:`find_ink` turns such an
image into an ink-strength map and a mask of the digit only:

1. the background (paper colour and light) is a coarse morphological closing
   of the image, so gradients and shadows are subtracted, not taken for ink;
2. ink strength is the largest per-channel difference from that background on
   the ink's side in that channel (darker on paper, lighter on a blackboard or
   the draw page), so red ink on green paper counts as much as black on white;
3. Otsu's threshold on the (lightly smoothed) strength separates ink from grain;
4. 8-connected components: ruled lines and page edges (long, thin, running
   along the image) and dust (small, or far from the digit) are dropped;
5. inside the digit's box, ink that the background window was too narrow to
   see (a marker's filled-in loop) is added back (:func:`fill_inked_areas`).

numpy + Pillow only (the serving image has no scipy or OpenCV).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

BACKGROUND_SIDE = 32  # the background is estimated on an image this small...
BACKGROUND_WINDOW = 9  # ...with min/max filters this wide (~1/4 of the side)
MIN_PART = 0.04  # a piece with less ink than this fraction of the digit's is dust
NEAR = 0.35  # pieces within this fraction of the digit's size belong to it (a broken stroke)
OUTSIDE_WINS = 0.15  # a border-touching component is the digit only if 1/0.15x heavier
LINE_SPAN = 0.85  # a component this long relative to the image side...
# Filled-in marker areas are judged against a background this wide (the whole 32 px copy)
# and added where they are as dark as the ink (x its 90th percentile): a shadow is lighter.
FILL_WINDOW = 31
DARK_AS_INK = 1.0
LINE_THICKNESS = 0.05  # ...and at most this thick (relative) is a ruled line or page edge


def background(plane: np.ndarray, dark_ink: bool, window: int = BACKGROUND_WINDOW) -> np.ndarray:
    """The paper's brightness at every pixel of one channel.

    A grayscale closing (max then min filter; an opening for light ink) on a
    coarse copy removes strokes narrower than the window and keeps gradients
    and broad shadows. Unlike a median, it also works where the ink covers
    most of the window, as at a digit running along the image's border.
    """
    height, width = plane.shape
    scale = BACKGROUND_SIDE / max(height, width)
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(plane, "F").resize(small_size, Image.Resampling.BOX).convert("L")
    grow = ImageFilter.MaxFilter(window)
    shrink = ImageFilter.MinFilter(window)
    paper = small.filter(grow).filter(shrink) if dark_ink else small.filter(shrink).filter(grow)
    resized = paper.convert("F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def is_darker(plane: np.ndarray) -> bool:
    """Is the ink darker than the paper here? It is the minority far from the median.

    Decided on the extremes (0.1 % tails), so a thin pen line covering 1 % of the
    picture still wins over the paper's grain and a shadow's dimmer paper.
    """
    low, mid, high = np.percentile(plane[::2, ::2], (0.1, 50, 99.9))  # a quarter is plenty
    return bool(mid - low >= high - mid)


def ink_strength(channels: np.ndarray, window: int = BACKGROUND_WINDOW) -> np.ndarray:
    """(H, W, C) 0..255 -> float32 (H, W): how far each pixel is from the paper, on the ink side.

    Channel by channel, each with its own side: red ink on green paper is
    lighter than the paper in red and darker in green; either way it is ink.
    """
    strength = np.zeros(channels.shape[:2], dtype=np.float32)
    for c in range(channels.shape[-1]):
        plane = np.ascontiguousarray(channels[..., c])
        dark = is_darker(plane)
        paper = background(plane, dark, window)
        np.maximum(strength, paper - plane if dark else plane - paper, out=strength)
    return strength


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of ``values``."""
    hist, edges = np.histogram(values, bins=bins)
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected labels (each the smallest flat index in its component; -1 off the mask).

    Min-label propagation with pointer jumping, all in numpy: a few dozen
    passes over the array instead of a per-pixel Python flood fill.
    """
    height, width = mask.shape
    big = height * width
    labels = np.where(mask, np.arange(big).reshape(height, width), big)
    while True:
        padded = np.pad(labels, 1, constant_values=big)
        new = labels.copy()
        for dy in range(3):
            for dx in range(3):
                np.minimum(new, padded[dy : dy + height, dx : dx + width], out=new)
        new[~mask] = big
        flat = new.ravel()
        on = flat < big
        for _ in range(4):  # pointer jumping: follow each label to its own label
            flat[on] = flat[flat[on]]
        if np.array_equal(new, labels):
            return np.where(mask, labels, -1)
        labels = new


def _components(labels: np.ndarray, strength: np.ndarray) -> list[dict]:
    """Mass, pixel count and bounding box of every component."""
    rows, cols = np.nonzero(labels >= 0)
    ids, inverse = np.unique(labels[rows, cols], return_inverse=True)
    n = len(ids)
    mass = np.bincount(inverse, weights=strength[rows, cols], minlength=n)
    count = np.bincount(inverse, minlength=n)
    top = np.full(n, labels.shape[0]), np.full(n, labels.shape[1])
    bottom = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    np.minimum.at(top[0], inverse, rows)
    np.minimum.at(top[1], inverse, cols)
    np.maximum.at(bottom[0], inverse, rows)
    np.maximum.at(bottom[1], inverse, cols)
    return [
        {
            "id": int(ids[i]),
            "mass": float(mass[i]),
            "count": int(count[i]),
            "box": (int(top[0][i]), int(top[1][i]), int(bottom[0][i]) + 1, int(bottom[1][i]) + 1),
        }
        for i in range(n)
    ]


def _is_line(comp: dict, shape: tuple[int, int]) -> bool:
    """A ruled line or a page edge: spans (almost) the whole image and is thin."""
    r0, c0, r1, c1 = comp["box"]
    for span, side in ((c1 - c0, shape[1]), (r1 - r0, shape[0])):
        if span >= LINE_SPAN * side and comp["count"] / span <= LINE_THICKNESS * side:
            return True
    return False


def _touches_border(comp: dict, shape: tuple[int, int]) -> bool:
    r0, c0, r1, c1 = comp["box"]
    return r0 == 0 or c0 == 0 or r1 == shape[0] or c1 == shape[1]


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Pixels between two boxes (0 if they touch or overlap)."""
    dr = max(a[0] - b[2], b[0] - a[2], 0)
    dc = max(a[1] - b[3], b[1] - a[3], 0)
    return max(dr, dc)


def select_digit(labels: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The mask of the components that make up the digit (see the module docstring)."""
    comps = _components(labels, strength)
    kept = [c for c in comps if not _is_line(c, labels.shape)] or comps
    kept.sort(key=lambda c: -c["mass"])
    # A shadow's edge or the page's edge runs into the border; a digit rarely does. Prefer
    # a clear-standing component unless it is small next to the border-touching one.
    inside = [c for c in kept if not _touches_border(c, labels.shape)]
    main = inside[0] if inside and inside[0]["mass"] >= OUTSIDE_WINS * kept[0]["mass"] else kept[0]
    box = main["box"]
    chosen = [main["id"]]
    for comp in inside if main in inside else kept:
        size = max(box[2] - box[0], box[3] - box[1])
        if comp is main:
            continue
        if comp["mass"] >= MIN_PART * main["mass"] and _gap(box, comp["box"]) <= NEAR * size:
            chosen.append(comp["id"])
            b = comp["box"]
            box = (min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3]))
    return np.isin(labels, chosen)


def _smooth(img: np.ndarray) -> np.ndarray:
    """A separable [1, 2, 1] / 4 blur (Pillow's blurs do not take float images)."""
    p = np.pad(img, 1, mode="edge")
    p = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    return ((p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4).astype(np.float32)


def find_ink(channels: np.ndarray, min_contrast: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(H, W, C) 0..255 -> (ink strength, digit mask), or None when there is no ink."""
    strength = ink_strength(channels)
    # A light blur first, so single grains of paper do not pass the threshold on their own.
    smooth = _smooth(strength)
    peak = float(smooth.max())
    if peak < min_contrast:
        return None
    threshold = max(otsu_threshold(smooth), 0.25 * peak, min_contrast / 2)
    mask = smooth >= threshold
    if not mask.any():
        return None
    # Components on a 2x2-pooled mask: a quarter of the pixels, half the propagation passes.
    height, width = mask.shape
    pad = ((0, height % 2), (0, width % 2))
    pooled = np.pad(mask, pad).reshape((height + 1) // 2, 2, (width + 1) // 2, 2)
    mass = np.pad(smooth, pad).reshape(pooled.shape).sum(axis=(1, 3))
    digit = select_digit(label_components(pooled.any(axis=(1, 3))), mass)
    digit = digit.repeat(2, axis=0).repeat(2, axis=1)[:height, :width]
    return fill_inked_areas(strength, mask & digit, channels, threshold)


def fill_inked_areas(
    strength: np.ndarray, mask: np.ndarray, channels: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Add the ink that a narrow background window took for paper, inside the digit's box.

    A thick marker fills small loops in, and a filled area wider than the
    background window is taken for paper: only its rim is left as ink, a hollow
    shape unlike any digit. Against a background seen through a window as wide
    as the image, such an area is as dark as the ink; paper inside a real loop
    is not, so loops stay open.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    wide = ink_strength(channels, FILL_WINDOW)
    level = float(np.percentile(strength[mask], 90))  # the ink's own darkness
    added = np.zeros_like(mask)
    added[box] = ~mask[box] & (_smooth(wide)[box] >= max(threshold, DARK_AS_INK * level))
    return np.where(added, wide, strength), mask | added
