"""The digits added to MNIST's train split: the prepare stage's and the users' corrections.

One function, so the train stage and anything that rebuilds its data (tests, sweeps) add
the same digits in the same order, which keeps a seeded run reproducible.
"""

from __future__ import annotations

import os

import numpy as np

from mnist_mlops.corrections.dataset import load_part
from mnist_mlops.data.prepared import load_variants


def extra_training_digits(
    prepared_dir: str | os.PathLike[str] | None,
    corrections_dir: str | os.PathLike[str] | None,
    corrections_weight: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The prepare stage's digits, then each correction of the train part
    ``corrections_weight`` times; None when there are none.

    A few dozen corrections among ~170,000 images would change nothing; repeating them
    gives what users corrected a say in the loss, and the field stage's gate (holdout,
    MNIST test, field sets) decides whether that helped.
    """
    parts = [load_variants(prepared_dir)] if prepared_dir is not None else []
    if corrections_dir is not None and corrections_weight > 0:
        fixes = load_part(corrections_dir, "train")
        if len(fixes):
            parts.append((np.repeat(fixes.x, corrections_weight, axis=0),
                          np.repeat(fixes.y, corrections_weight)))  # fmt: skip
    if not parts:
        return None
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
