"""Split MNIST into train/val/test and compute normalisation stats on train only.

The arrays stay uint8 (4x smaller than float32, and cheap to move to a GPU in
one copy); the stats travel with them and become the model's first layer, so
the exported ONNX graph normalises raw pixels itself and serving cannot drift
from training. Stats come from the training split *after* the validation
split is held out, so nothing about val or test leaks into training.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import DataFormatError, UserError
from mnist_mlops.core.fileio import atomic_open, read_json, write_json
from mnist_mlops.data.idx import read_idx

RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    """uint8 images (N, 28, 28) and int64 labels (N,) for each split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def _check_pair(
    images: np.ndarray, labels: np.ndarray, name: str, labels_name: str | None = None
) -> None:
    """Validate an images/labels pair; errors name the file at fault (labels_name for labels)."""
    labels_name = labels_name or name
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataFormatError(
            f"{name}: images must be uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        where = "" if labels_name == name else f" in {name}"
        raise DataFormatError(
            f"{labels_name}: {len(labels)} labels for {len(images)} images{where}; "
            "the files do not belong together"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataFormatError(
            f"{labels_name}: labels outside 0..9 ({labels.min()}..{labels.max()})"
        )


def load_raw(raw_dir: str | os.PathLike[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read and validate the four raw IDX files."""
    out = {}
    for split, (img_name, lbl_name) in RAW_FILES.items():
        images = read_idx(Path(raw_dir) / img_name)
        labels = read_idx(Path(raw_dir) / lbl_name).astype(np.int64)
        _check_pair(images, labels, str(Path(raw_dir) / img_name), str(Path(raw_dir) / lbl_name))
        out[split] = (images, labels)
    return out


def split_train_val(
    images: np.ndarray, labels: np.ndarray, val_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a seeded random ``val_size`` images from the training set."""
    if not 0 < val_size < len(images):
        raise UserError(
            f"split.val_size must be between 1 and {len(images) - 1} "
            f"(the training set has {len(images)} images); got {val_size}"
        )
    order = np.random.default_rng(seed).permutation(len(images))
    val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
    return images[train], labels[train], images[val], labels[val]


def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and std of pixel values scaled to [0, 1] (float64 accumulation)."""
    scaled = images.astype(np.float64) / 255.0
    mean, std = float(scaled.mean()), float(scaled.std())
    if not math.isfinite(std) or std <= 0:
        raise DataFormatError("training images have zero variance; the data is corrupt")
    return mean, std


def make_splits(raw_dir: str | os.PathLike[str], val_size: int, seed: int) -> tuple[Splits, dict]:
    """Load raw files, split, and compute stats. Returns the splits and the stats dict."""
    raw = load_raw(raw_dir)
    x_tr, y_tr, x_val, y_val = split_train_val(*raw["train"], val_size=val_size, seed=seed)
    x_te, y_te = raw["test"]
    mean, std = pixel_stats(x_tr)
    splits = Splits(x_tr, y_tr, x_val, y_val, x_te, y_te)
    stats = {
        "mean": mean,
        "std": std,
        "counts": {s: int(len(splits.split(s)[1])) for s in SPLITS},
        "class_counts": {s: np.bincount(splits.split(s)[1], minlength=10).tolist() for s in SPLITS},
        "val_size": val_size,
        "seed": seed,
    }
    return splits, stats


def save_splits(splits: Splits, stats: dict, out_dir: str | os.PathLike[str]) -> None:
    """Write ``mnist.npz`` (no pickle) and ``stats.json`` atomically."""
    out = Path(out_dir)
    arrays = {f"{k}_{s}": splits.split(s)[i] for s in SPLITS for i, k in enumerate("xy")}
    with atomic_open(out / "mnist.npz", "wb") as handle:
        np.savez(handle, **arrays)
    write_json(out / "stats.json", stats)


def load_splits(processed_dir: str | os.PathLike[str]) -> tuple[Splits, dict]:
    """Load and validate what :func:`save_splits` wrote."""
    path = Path(processed_dir) / "mnist.npz"
    stats_path = Path(processed_dir) / "stats.json"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        stats = read_json(stats_path)
    except FileNotFoundError as exc:
        raise DataFormatError(f"{exc.filename}: not found; run the split stage first") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{stats_path}: not valid JSON ({exc}); rerun the split stage"
        ) from None
    # A truncated or garbage npz surfaces as any of these, depending on where it breaks.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataFormatError(
            f"{path}: unreadable ({type(exc).__name__}: {exc}); rerun the split stage"
        ) from None
    missing = [f"{k}_{s}" for s in SPLITS for k in "xy" if f"{k}_{s}" not in arrays]
    if missing:
        raise DataFormatError(f"{path}: missing arrays {missing}; rerun the split stage")
    for s in SPLITS:
        _check_pair(arrays[f"x_{s}"], arrays[f"y_{s}"].astype(np.int64), f"{path}[{s}]")
    mean, std = (stats.get("mean"), stats.get("std")) if isinstance(stats, dict) else (None, None)
    finite = all(isinstance(v, int | float) and math.isfinite(v) for v in (mean, std))
    if not finite or std <= 0:
        raise DataFormatError(
            f"{stats_path}: mean/std missing, not finite or std <= 0; rerun the split stage"
        )
    splits = Splits(**{k: (v.astype(np.int64) if k[0] == "y" else v) for k, v in arrays.items()})
    return splits, stats
