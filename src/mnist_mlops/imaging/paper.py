"""The paper under the ink: which side the ink is on, and how bright the paper is everywhere.

:mod:`mnist_mlops.imaging.ink` needs, for every pixel, how far it is from
the paper on the ink's side. In a photo the paper is not one colour: lighting
gradients, shadows and their edges. Here:

1. the ink's side (darker on paper, lighter on a blackboard or the draw page) per
   channel, from a high-pass of the image (:func:`ink_sides`);
2. the paper's brightness per channel, a morphological closing (an opening for
   light ink) at half the working size (:func:`background`);
3. ink strength, the largest per-channel difference from the paper on the ink's
   side (:func:`ink_strength`): red ink on green paper counts as much as black on
   white.

A drawing, a screenshot or a flattened transparent canvas has paper of one exact
value; :func:`uniform_paper` finds it from a histogram, and the strength is then
the plain difference from it (nothing to estimate, a fraction of the time).
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND_SIDE = 160  # the background is estimated at this longer side (sharp shadow edges)...
BACKGROUND_WINDOW = 0.25  # ...with a closing this wide, as a fraction of that side
# The ink's side is decided on a high-pass: minus a blur of sigma POLARITY_BLUR x the
# longer side, computed on a copy POLARITY_SIDE px long (lighting is that broad).
POLARITY_SIDE = 40
POLARITY_BLUR = 0.25
DECISIVE = 2.0  # a channel goes against the brightness only with a tail this many times the other
UNIFORM = 0.5  # paper of one exact value over this share of the image: a drawing


def _histogram(plane: np.ndarray) -> np.ndarray:
    """Counts of each value 0..255 in a uint8 array (OpenCV's, several times numpy's speed)."""
    return cv2.calcHist([np.ascontiguousarray(plane)], [0], None, [256], [0, 256]).ravel()


def percentiles(plane: np.ndarray, qs: tuple[float, ...]) -> list[int]:
    """Percentiles (0..100) of a uint8 array from its histogram: no sort, any size."""
    cdf = np.cumsum(_histogram(plane))
    return [int(np.searchsorted(cdf, q / 100.0 * (cdf[-1] - 1), side="right")) for q in qs]


def _scaled(img: np.ndarray, side: int) -> np.ndarray:
    """A copy whose longer side is at most ``side`` (area averaging), channels kept."""
    height, width = img.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return img
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)


def ink_sides(img: np.ndarray, side: int) -> list[bool]:
    """For each channel: is the ink darker than the paper there?

    Lighting is broad and ink is thin: after subtracting a wide blur (a
    high-pass), the extremes left are the strokes. Whichever tail (0.1 %) lies
    farther out is the ink, so a thin pen line covering 1 % of the picture wins
    over grain, and a bright patch of light or a shadow does not decide it.
    Per channel: red ink on green paper is lighter than the paper in red and
    darker in green; either way it is ink.
    """
    small = _scaled(img, side).astype(np.float32)
    tiny = _scaled(small, POLARITY_SIDE)
    blur = cv2.GaussianBlur(tiny, (0, 0), POLARITY_BLUR * max(tiny.shape[:2]))
    low = cv2.resize(blur, small.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    high = small - low.reshape(small.shape)
    flat = high[::2, ::2].reshape(-1, high.shape[-1])  # a quarter of the pixels is plenty
    tails = np.percentile(np.column_stack([flat, flat.mean(axis=1)]), (0.1, 99.9), axis=0)
    dark = [bool(-lo >= hi) for lo, hi in tails.T]
    *channels, brightness = dark
    # A channel goes against the brightness only when clearly so: blue ink in a shadow
    # is lighter than the shadowed paper in blue, but it is no light ink.
    return [
        ch if ch == brightness or max(-lo, hi) >= DECISIVE * min(-lo, hi) else brightness
        for ch, (lo, hi) in zip(channels, tails.T[:-1], strict=True)
    ]


def background(plane: np.ndarray, dark_ink: bool, side: int, window: float) -> np.ndarray:
    """The paper's brightness at every pixel of one uint8 channel.

    A grayscale closing (an opening for light ink) removes strokes narrower
    than the window and keeps gradients, broad shadows and their edges: a
    closing gives a straight step or ramp back unchanged. Unlike a median, it
    also works where the ink covers most of the window, as at a digit running
    along the image's border. Computed on a copy ``side`` px long, then scaled back.
    """
    small = _scaled(plane, side)[..., 0]
    k = max(3, 2 * round(window * max(small.shape) / 2) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    op = cv2.MORPH_CLOSE if dark_ink else cv2.MORPH_OPEN
    # Outside the image is ignored (OpenCV's default border for morphology): a stroke
    # along the border is judged by the paper beside it, not by copies of itself.
    paper = cv2.morphologyEx(small, op, kernel)
    if paper.shape != plane.shape:
        paper = cv2.resize(paper, plane.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return paper


def ink_strength(channels: np.ndarray, sides: list[bool], side: int, window: float) -> np.ndarray:
    """(H, W, C) uint8 -> uint8 (H, W): how far each pixel is from the paper, on the ink side.

    The largest difference over the channels, each on its own side (:func:`ink_sides`).
    """
    strength = np.zeros(channels.shape[:2], dtype=np.uint8)
    for c, dark in enumerate(sides):
        plane = np.ascontiguousarray(channels[..., c])
        paper = background(plane, dark, side, window)
        diff = cv2.subtract(paper, plane) if dark else cv2.subtract(plane, paper)  # saturates
        np.maximum(strength, diff, out=strength)
    return strength


def uniform_paper(img: np.ndarray) -> list[int] | None:
    """Per channel, the paper's exact value when it covers over :data:`UNIFORM` of the image.

    A photo's paper has grain and light, never one value; a drawing has. None
    for a photo.
    """
    paper = []
    n = img.shape[0] * img.shape[1]
    for c in range(img.shape[-1]):
        hist = _histogram(img[..., c])
        mode = int(hist.argmax())
        if hist[mode] <= UNIFORM * n:
            return None
        paper.append(mode)
    return paper


def uniform_strength(img: np.ndarray, paper: list[int]) -> tuple[np.ndarray, list[bool]]:
    """Strength against paper of one exact value; the ink's side in each channel is the
    side where the rest of that channel lies (the larger total difference)."""
    strength = np.zeros(img.shape[:2], dtype=np.uint8)
    sides = []
    for c, value in enumerate(paper):
        plane = np.ascontiguousarray(img[..., c])
        level = np.full_like(plane, value)
        darker, lighter = cv2.subtract(level, plane), cv2.subtract(plane, level)
        dark = bool(cv2.sumElems(darker)[0] >= cv2.sumElems(lighter)[0])
        sides.append(dark)
        np.maximum(strength, darker if dark else lighter, out=strength)
    return strength, sides
