"""Find the digit's ink in a photo or drawing: background, threshold, components.

A photo of a digit on paper is mostly paper: grain, a lighting gradient, maybe a
shadow, a ruled line or the edge of the sheet. :func:`find_ink` turns such an
image into a mask of the digit only:

1-2. ink strength, how far each pixel is from the paper on the ink's side, with
   gradients, shadows and their edges subtracted (:mod:`mnist_mlops.imaging.paper`);
3. Otsu's threshold on the (lightly smoothed) strength separates ink from grain;
4. 8-connected components: ruled lines and page edges (long, thin, running
   along the image) and dust (small, or far from the digit) are dropped; the
   fainter parts of a pen's stroke joined to the digit are kept (hysteresis);
5. ink that the background window was too narrow to see (a marker's filled-in
   loop) is added back where it joins the digit (:func:`fill_inked_areas`).

OpenCV does the pixel work (closing, blur, Otsu, components), so a 320 px image
costs well under a millisecond; numpy only glues the steps together.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_mlops.imaging.paper import (
    BACKGROUND_SIDE,
    BACKGROUND_WINDOW,
    ink_sides,
    ink_strength,
    percentiles,
    uniform_paper,
    uniform_strength,
)
from mnist_mlops.imaging.pixels import to_uint8

MIN_PART = 0.04  # a piece with less ink than this fraction of the digit's is dust
NEAR = 0.35  # pieces within this fraction of the digit's size belong to it (a broken stroke)
OUTSIDE_WINS = 0.15  # a border-touching component is the digit only if 1/0.15x heavier
LINE_SPAN = 0.85  # a component this long relative to the image side...
LINE_THICKNESS = 0.05  # ...and at most this thick (relative) is a ruled line or page edge
NOISE_TIMES = 2.0  # faint ink is this many times the paper's 90th percentile of strength...
LOCAL_PEAK = 5  # ...and at least half the strongest ink within this window (px), or within
LOCAL_SHARE = 0.2  # this share of the digit's size if wider: a blurred edge's halo is not ink
BRIDGE = 5  # faint ink joins the digit across gaps narrower than this (px): a dashed line
# Filled-in marker areas are judged against a background as wide as the whole image (on a
# 32 px copy) and added where they are as dark as the ink on that scale (x its median): a
# shadow is lighter.
FILL_SIDE = 32
DARK_AS_INK = 1.0


def _is_line(box: np.ndarray, count: int, shape: tuple[int, int]) -> bool:
    """A ruled line or a page edge: spans (almost) the whole image and is thin."""
    _, _, w, h = box
    for span, side in ((w, shape[1]), (h, shape[0])):
        if span >= LINE_SPAN * side and count / span <= LINE_THICKNESS * side:
            return True
    return False


def _touches_border(box: np.ndarray, shape: tuple[int, int]) -> bool:
    x, y, w, h = box
    return x == 0 or y == 0 or x + w == shape[1] or y + h == shape[0]


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Pixels between two (x0, y0, x1, y1) boxes (0 if they touch or overlap)."""
    return max(a[0] - b[2], b[0] - a[2], a[1] - b[3], b[1] - a[3], 0)


def select_digit(mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The 8-connected components of ``mask`` that make up the digit (module docstring, 4)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    on = np.flatnonzero(mask)
    mass = np.bincount(labels.ravel()[on], weights=weight.ravel()[on], minlength=n)
    shape = mask.shape
    ids = [i for i in range(1, n) if not _is_line(stats[i, :4], stats[i, 4], shape)]
    ids = sorted(ids or range(1, n), key=lambda i: -mass[i])
    # A shadow's edge or the page's edge runs into the border; a digit rarely does. Prefer
    # a clear-standing component unless it is small next to the border-touching one.
    inside = [i for i in ids if not _touches_border(stats[i, :4], shape)]
    use_inside = bool(inside) and mass[inside[0]] >= OUTSIDE_WINS * mass[ids[0]]
    pool = inside if use_inside else ids
    main = pool[0]
    x, y, w, h = (int(v) for v in stats[main, :4])
    box = (x, y, x + w, y + h)
    chosen = [main]
    for i in pool[1:]:
        size = max(box[2] - box[0], box[3] - box[1])
        x, y, w, h = (int(v) for v in stats[i, :4])
        other = (x, y, x + w, y + h)
        if mass[i] >= MIN_PART * mass[main] and _gap(box, other) <= NEAR * size:
            chosen.append(i)
            box = (min(box[0], x), min(box[1], y), max(box[2], x + w), max(box[3], y + h))
    keep = np.zeros(n, dtype=bool)
    keep[chosen] = True
    return keep[labels]


def long_lines(mask: np.ndarray, span: float, bridge: int = 1) -> np.ndarray:
    """The straight runs of ``mask`` ``span`` x the image's side long (ruled lines, page edges).

    An opening with a long, 1 px thin line keeps only such runs (after closing
    gaps under ``bridge`` px: grain breaks a faint line into dashes).
    """
    height, width = mask.shape
    long_w, long_h = max(3, round(span * width)), max(3, round(span * height))
    if mask.sum(axis=1).max() < long_w and mask.sum(axis=0).max() < long_h:
        return np.zeros_like(mask)  # no row or column holds enough ink for such a run
    u8 = mask.view(np.uint8)
    if bridge > 1:
        u8 = cv2.dilate(u8, np.ones((bridge, bridge), np.uint8))
    rows = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((1, long_w), np.uint8))
    cols = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((long_h, 1), np.uint8))
    return (rows | cols).view(bool) & mask


def _hit(labels: np.ndarray, n: int, where: np.ndarray) -> np.ndarray:
    """Per label (0..n-1): does its component have a pixel in ``where``? Label 0 never."""
    hit = np.zeros(n, dtype=bool)
    hit[np.unique(labels[where])] = True
    hit[0] = False
    return hit


def grow_into(seed: np.ndarray, low: np.ndarray, bridge: int = 1) -> np.ndarray:
    """Hysteresis: the pixels of ``low`` joined to ``seed``, across gaps under ``bridge`` px.

    The components are taken on ``low`` dilated by ``bridge`` (a dashed pen line
    is one stroke), but only pixels of ``low`` itself are returned.
    """
    joined = low.view(np.uint8)
    if bridge > 1:
        joined = cv2.dilate(joined, np.ones((bridge, bridge), np.uint8))
    n, labels = cv2.connectedComponents(joined, connectivity=8, ltype=cv2.CV_32S)
    return (_hit(labels, n, seed)[labels] & low) | seed


def half_of_local_peak(smooth: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """Pixels at least half as strong as the strongest ink near them: the stroke's own edge.

    A blurred stroke (a small digit scanned and blown up, an out-of-focus photo) fades
    over many pixels; Otsu's threshold sits low on that ramp and takes the halo for ink,
    fattening strokes and closing a 9's loop. Half the local peak is where a blurred edge
    really is, so the window must reach past the blur: the larger of :data:`LOCAL_PEAK`
    px and :data:`LOCAL_SHARE` of the digit's size (a sharp stroke is unaffected).
    """
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    k = max(LOCAL_PEAK, 2 * round(LOCAL_SHARE * side / 2) + 1)
    beside = cv2.dilate(smooth, np.ones((k, k), np.uint8))
    return smooth.astype(np.uint16) * 2 >= beside


def find_ink(channels: np.ndarray, min_contrast: float) -> np.ndarray | None:
    """(H, W, C) 0..255 -> the digit's mask, or None when there is no ink."""
    img = to_uint8(channels)
    paper = uniform_paper(img)
    if paper is not None:  # a drawing: the paper is known exactly, nothing to estimate
        strength, sides = uniform_strength(img, paper)
    else:
        sides = ink_sides(img, BACKGROUND_SIDE)
        strength = ink_strength(img, sides, BACKGROUND_SIDE, BACKGROUND_WINDOW)
    # A light blur first, so single grains of paper do not pass the threshold on their own.
    smooth = cv2.GaussianBlur(strength, (3, 3), 0, borderType=cv2.BORDER_REFLECT)
    peak = float(smooth.max())
    if peak < min_contrast:
        return None
    otsu, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    threshold = max(float(otsu) + 1.0, 0.25 * peak, min_contrast / 2)
    # Fainter ink joined to the digit is the digit's too (a thin pen line breaking up in
    # JPEG): above the paper's noise, and at least half as dark as the ink beside it
    # (which keeps the pale rim of a dark stroke out, as the global threshold did).
    (p90,) = percentiles(smooth, (90,))
    faint = smooth >= max(NOISE_TIMES * p90, min_contrast / 2)
    # A ruled line across (almost) the whole picture, seen where it is faint and whole, is
    # not the digit even where it is dark; shorter straight runs do not join faint ink to it.
    across = long_lines(faint, LINE_SPAN, bridge=3)
    mask = (smooth >= threshold) & ~across
    if not mask.any():
        return None
    digit = select_digit(mask, smooth.astype(np.float32))
    faint &= ~(across | long_lines(faint, 0.5))
    digit = grow_into(digit, faint, BRIDGE) & half_of_local_peak(smooth, digit)
    if paper is not None:
        return digit  # no background window took a filled area for paper
    return fill_inked_areas(strength, digit, img, sides, threshold)


def fill_inked_areas(
    strength: np.ndarray, mask: np.ndarray, img: np.ndarray, sides: list[bool], threshold: float
) -> np.ndarray:
    """Add the ink that the background window took for paper, where it joins the digit.

    A thick marker fills loops in, and a filled area wider than the background
    window is taken for paper: only its rim (or nothing) is left as ink, a shape
    unlike any digit. Against a background seen through a window as wide as the
    image, such an area is as dark as the ink; paper inside a real loop is not,
    so loops stay open. An area is added only if it touches the digit and not
    the image's border: a shadow as dark as pencil runs off the picture.
    """
    wide = ink_strength(img, sides, FILL_SIDE, 1.0)
    smooth = cv2.GaussianBlur(wide, (3, 3), 0, borderType=cv2.BORDER_REFLECT)
    # The ink's own darkness on the same scale: against the whole-image background a marker's
    # filled area is as dark as its strokes; paper in a shadow, even inside a loop, is lighter.
    level = float(percentiles(smooth[mask], (50,))[0])
    dark = (smooth >= max(threshold, DARK_AS_INK * level)) & ~mask
    if not dark.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        dark.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    near = cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    keep = _hit(labels, n, near & dark)
    for i in np.flatnonzero(keep):
        keep[i] = not _touches_border(stats[i, :4], mask.shape)
    return mask | keep[labels]
