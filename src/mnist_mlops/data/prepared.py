"""The prepare stage's output file: extra training digits, written by the prepare stage and
read by training. The format lives here so training need not import how they are made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import numpy as np

from mnist_mlops.core.config import VariantKind
from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.core.fileio import atomic_open

KINDS: tuple[str, ...] = get_args(VariantKind)  # also the order of the images in the file
VARIANTS_FILE = "variants.npz"  # in the prepare stage's output folder


def save_variants(variants: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path) -> dict:
    """Write ``variants.npz`` (x, y) in :data:`KINDS` order, atomically; return the counts."""
    names = [k for k in KINDS if k in variants]
    x = np.concatenate([variants[k][0] for k in names]) if names else np.zeros((0, 28, 28))
    y = np.concatenate([variants[k][1] for k in names]) if names else np.zeros(0)
    with atomic_open(Path(out_dir) / VARIANTS_FILE, "wb") as handle:
        np.savez(handle, x=x.astype(np.uint8), y=y.astype(np.int64))
    return {k: len(variants[k][1]) for k in names}


def load_variants(prepared_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) that :func:`save_variants` wrote, validated."""
    path = Path(prepared_dir) / VARIANTS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except FileNotFoundError:
        raise DataFormatError(f"{path}: not found; run the prepare stage first") from None
    except (KeyError, ValueError, OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: unreadable ({exc}); rerun the prepare stage") from None
    if x.dtype != np.uint8 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
        raise DataFormatError(f"{path}: not (N, 28, 28) uint8 images with N labels; rerun prepare")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataFormatError(f"{path}: labels outside 0..9; rerun the prepare stage")
    return x, y
