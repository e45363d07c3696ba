"""Small synthetic MNIST in the real file format, for tests that must not download MNIST.

Each class is a bright 7x7 block at its own place on a 28x28 canvas plus noise, so a small
MLP learns it in one or two epochs on CPU; the IDX bytes carry the real magic numbers, so
every reader path is exercised.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from mnist_mlops.data.splits import RAW_FILES


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes: the pipeline only reads IDX, tests write it."""
    if array.dtype != np.uint8:
        raise ValueError(f"only uint8 arrays can be encoded, got {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise ValueError(f"IDX supports 1 to 4 dimensions, got {array.ndim}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + np.ascontiguousarray(array).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, 28, 28) and labels; class k lights a block at a k-specific place."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + (k // 4) * 8, 2 + (k % 4) * 6
        images[i, r : r + 7, c : c + 7] = rng.integers(180, 256, size=(7, 7))
    return images, labels


def write_mirror(
    folder: Path, n_train: int = 400, n_test: int = 200, seed: int = 0
) -> dict[str, str]:
    """Write gzip IDX files into ``folder``; return name -> SHA-256 of the decompressed bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = synthetic_digits(n_train, seed)
    x_te, y_te = synthetic_digits(n_test, seed + 1)
    sha = {}
    names = (*RAW_FILES["train"], *RAW_FILES["test"])
    for name, array in zip(names, (x_tr, y_tr, x_te, y_te), strict=True):
        raw = encode_idx(array)
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        sha[name] = hashlib.sha256(raw).hexdigest()
    return sha
