"""Extra training digits that look like what the service hands the model.

MNIST's digits are anti-aliased scans of pen strokes; what reaches the model at
serve time is a photo, a drawing or a typed digit after
:func:`mnist_mlops.imaging.mnist_style`: binarised, stroke width
normalised, fit into 20x20 and centred by mass. A model that never saw that
look misreads it, so the prepare stage adds, built from the *train* split only
(the field sets come from the test split):

- ``served``: each training digit through the same preprocessing;
- ``marker``: each training digit redrawn with a thick round brush (8-20 % of
  its height, so small loops fill in as a marker's do), then preprocessed;
- ``brushed``: each training digit's centre line (thinned at 2x) stroked with a round
  brush of one width (10-24 % of its height): a marker's even stroke, where ``marker``
  thickens the scan's own uneven one;
- ``lowres``: each training digit as a scan of a small digit (a few pixels across, blown
  up smoothly), then preprocessed;
- ``flagged`` and ``crossed``: each training 1 flagged, each 7 crossed, the continental
  way MNIST's American writers almost never use (:mod:`.continental`);
- ``fonts``: digits typed in fonts that matplotlib ships *other than* the
  DejaVu ones the field set is typed in (STIX, Computer Modern), any size,
  slightly rotated, then preprocessed.

The work is per image (~0.3 ms each) and spread over processes.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fonts import FIELD_FONTS, font_dir
from mnist_mlops.imaging.pools import image_pool
from mnist_mlops.imaging.thinning import skeleton
from mnist_mlops.prepare import continental
from mnist_mlops.prepare.restyle import BASE, INK_LEVEL, Draw, as_mnist, redraw_chunk

MARKER_RADIUS = (4, 11)  # brush radius in px at BASE: 8-20 % of the digit's height
BRUSH_THIN_PX = 56  # the centre line is found at 2x MNIST's size (8x faster than at 4x)
BRUSH_SHARE = (0.10, 0.24)  # brush width as a share of the digit's height at BASE
LOWRES_CELLS = (7, 13)  # the digit's field reduced to this many pixels across
LOWRES_SIDE = (40, 160)  # then blown up to this many pixels across
CHUNKS_PER_WORKER = 8
# kind -> (the training digit it redraws, how, its seed stream)
CONTINENTAL = {"flagged": (1, continental.flagged, 3000), "crossed": (7, continental.crossed, 4000)}


def _as_is(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return img


def _served(chunk: np.ndarray) -> np.ndarray:
    return redraw_chunk((chunk, 0), _as_is)


def _thick(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The scan's own stroke, thickened with a round brush of a drawn radius."""
    import cv2

    big = cv2.resize(img, (BASE, BASE), interpolation=cv2.INTER_CUBIC)
    radius = int(rng.integers(*MARKER_RADIUS))
    brush = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    # Padded first, so the thick stroke is not cut at the field's edge.
    return cv2.dilate(np.pad((big >= INK_LEVEL).astype(np.uint8) * 255, radius + 1), brush)


def _brush(img: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The digit's centre line, stroked with one round brush of a drawn width: a marker's
    even stroke (``_thick`` thickens the scan's uneven one)."""
    import cv2

    up = BASE // BRUSH_THIN_PX
    small = cv2.resize(img, (BRUSH_THIN_PX,) * 2, interpolation=cv2.INTER_CUBIC) >= INK_LEVEL
    line = np.kron(skeleton(small), np.ones((up, up), bool)).astype(np.uint8) * 255
    rows = np.flatnonzero(line.any(axis=1))
    if len(rows) == 0:
        return None
    width = rng.uniform(*BRUSH_SHARE) * (rows[-1] - rows[0] + 1)
    radius = max(1, round(width / 2))
    brush = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    return cv2.dilate(np.pad(line, radius + 1), brush)


def _small_scan(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A scan of a small digit: reduced to a few pixels across, then blown up smoothly
    (a loop becomes a soft grey hole)."""
    import cv2

    cells = int(rng.integers(*LOWRES_CELLS))
    small = cv2.resize(img, (cells, cells), interpolation=cv2.INTER_AREA)
    side = int(rng.integers(*LOWRES_SIDE))
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


# kind -> (how each training digit is redrawn, its seed stream)
REDRAWN: dict[str, tuple[Draw, int]] = {
    "marker": (_thick, 1000),
    "brushed": (_brush, 5000),
    "lowres": (_small_scan, 2000),
}


def _typed(job: tuple[str, int, int, int]) -> np.ndarray:
    """``count`` images of ``digit`` typed in the font at ``path``."""
    from PIL import Image, ImageDraw, ImageFont

    path, digit, count, seed = job
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        size = int(rng.integers(40, 120))
        font = ImageFont.truetype(path, size)
        glyph = Image.new("L", (3 * size, 3 * size), 0)
        ImageDraw.Draw(glyph).text(
            (1.5 * size, 1.5 * size), str(digit), fill=255, font=font, anchor="mm"
        )
        glyph = glyph.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR)
        done = as_mnist(np.asarray(glyph))
        if done is not None:
            out.append(done)
    return np.stack(out) if out else np.zeros((0, 28, 28), np.uint8)


def training_fonts(names: tuple[str, ...]) -> list[Path]:
    """The font files to type digits in; a field-set font is refused (it would be a leak)."""
    leaked = sorted(set(names) & set(FIELD_FONTS))
    if leaked:
        raise UserError(
            f"prepare.fonts: {', '.join(leaked)} is typed in the 'fonts' field set; "
            "training on it would inflate that set's accuracy. Pick other fonts"
        )
    folder = font_dir()
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        known = ", ".join(sorted(p.name for p in folder.glob("*.ttf")))
        raise UserError(f"prepare.fonts: no font {', '.join(missing)} in {folder}; known: {known}")
    return [folder / n for n in names]


def build_variants(
    images: np.ndarray,
    labels: np.ndarray,
    kinds: tuple[str, ...],
    fonts: tuple[str, ...],
    font_samples: int,
    seed: int,
    workers: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """kind -> (uint8 images (N, 28, 28), int64 labels) for each requested kind."""
    if "fonts" in kinds and not (fonts and font_samples > 0):
        raise UserError("prepare: kind 'fonts' needs prepare.fonts and prepare.font_samples > 0")
    workers = workers or min(os.cpu_count() or 1, 8)
    chunks = np.array_split(images, workers * CHUNKS_PER_WORKER)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with image_pool(workers) as pool:
        if "served" in kinds:
            out["served"] = (np.concatenate(list(pool.map(_served, chunks))), labels)
        for kind, (draw, offset) in REDRAWN.items():
            if kind in kinds:
                jobs = [(c, seed * offset + i) for i, c in enumerate(chunks)]
                done = pool.map(partial(redraw_chunk, draw=draw), jobs)
                out[kind] = (np.concatenate(list(done)), labels)
        for kind, (digit, draw, offset) in CONTINENTAL.items():
            if kind in kinds:
                picked = np.flatnonzero(labels == digit)
                parts = np.array_split(images[picked], workers * CHUNKS_PER_WORKER)
                jobs = [(c, seed * offset + i) for i, c in enumerate(parts)]
                out[kind] = (np.concatenate(list(pool.map(draw, jobs))), labels[picked])
        if "fonts" in kinds:
            paths = training_fonts(fonts)
            jobs = [
                (str(p), d, font_samples, seed * 1000 + 10 * i + d)
                for i, p in enumerate(paths)
                for d in range(10)
            ]
            typed = list(pool.map(_typed, jobs))
            ys = np.concatenate([np.full(len(t), d) for t, (_, d, _, _) in zip(typed, jobs)])
            out["fonts"] = (np.concatenate(typed), ys.astype(np.int64))
    return out
