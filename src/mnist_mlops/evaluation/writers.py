"""The 'writers' field set: real handwriting that none of our generators made.

UCI optdigits as scikit-learn ships it (``load_digits``: 1,797 digits by 43 writers,
scanned, cut and reduced to 8x8 cells of 17 grey levels). It comes inside a package the
pipeline already installs, so it works offline, and it is never used for training: the
prepare stage and training read only MNIST's train split.

Each digit is presented as a small scanned or photographed digit: the 8x8 cell upscaled
smoothly (bicubic, so a loop stays a soft hole, as a scan of a small digit looks), in dark
ink on white or tinted paper with grain, anywhere on a larger page, slightly rotated,
blurred, and saved as PNG or JPEG. The ranges are named in :data:`SPEC`; every image is
seeded, so the set is identical for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from mnist_mlops.evaluation.redraw import encode

Range = tuple[float, float]


@dataclass(frozen=True)
class WritersSpec:
    """How each digit is presented; every draw is uniform over the range."""

    digit_px: tuple[int, int] = (40, 180)  # the digit's height on the page
    page_scale: Range = (1.6, 3.2)  # page side / digit height
    rotation_deg: Range = (-8.0, 8.0)
    paper: Range = (200.0, 255.0)  # brightness of the page
    tint: Range = (0.9, 1.0)  # per-channel factor on the page: white to faintly coloured
    ink: Range = (10.0, 90.0)  # black to grey
    grain: Range = (0.0, 6.0)  # std of the paper's noise, 0..255
    blur: Range = (0.3, 1.5)  # Gaussian blur radius in px after placing
    jpeg_share: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 92)


SPEC = WritersSpec()


def load_writers() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) float 0..16 cells and their int64 labels, from scikit-learn's copy."""
    from sklearn.datasets import load_digits  # bundled with the package: no download

    digits = load_digits()
    return digits.images.astype(np.float32), digits.target.astype(np.int64)


def present(cell: np.ndarray, rng: np.random.Generator, spec: WritersSpec = SPEC) -> bytes:
    """One 8x8 cell (0..16, ink high) as an encoded scan of a small digit on paper."""
    height = int(rng.integers(*spec.digit_px))
    # The 8x8 cell covers the whole digit box: upscale it smoothly to the digit's size.
    ink = Image.fromarray((cell / 16.0 * 255.0).astype(np.uint8), "L")
    ink = ink.resize((height, height), Image.Resampling.BICUBIC)
    ink = ink.rotate(rng.uniform(*spec.rotation_deg), Image.Resampling.BILINEAR, expand=True)
    side = int(height * rng.uniform(*spec.page_scale))
    layer = Image.new("L", (side, side), 0)
    x = int(rng.integers(0, max(1, side - ink.width)))
    y = int(rng.integers(0, max(1, side - ink.height)))
    layer.paste(ink, (x, y))
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    paper = rng.uniform(*spec.paper) * rng.uniform(*spec.tint, 3)
    ink_rgb = np.full(3, rng.uniform(*spec.ink))
    page = paper * (1.0 - alpha) + ink_rgb * alpha
    page = page + rng.normal(0.0, rng.uniform(*spec.grain), (side, side, 1))
    out = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "RGB")
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(*spec.blur)))
    if rng.random() < spec.jpeg_share:
        return encode(out, "JPEG", quality=int(rng.integers(*spec.jpeg_quality)))
    return encode(out, "PNG")


def writers_set(seed: int, n: int | None = None) -> tuple[list[bytes], np.ndarray]:
    """Every writers digit (or the first ``n``), each presented with its own seeded draw."""
    cells, labels = load_writers()
    if n is not None:
        cells, labels = cells[:n], labels[:n]
    rng = np.random.default_rng([seed, 1797])
    return [present(cell, rng) for cell in cells], labels
