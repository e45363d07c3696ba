"""The field sets' model inputs: each set built and run through the serving preprocessing once.

Building a set (drawing on canvases up to 1,400 px, blurring, JPEG) costs several times
more than preprocessing it, and the field and reference stages need the same images.
So the field stage builds the sets in parallel (:func:`build_field_inputs`: one process
per set, as many at once as there are cores; each set draws from its own seeded generator,
so the images do not depend on the order or the number of processes), scores them, and
saves their model inputs (:func:`save_field_inputs`); the reference stage reads those
(:func:`load_field_inputs`) instead of drawing every set again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.core.fileio import atomic_path
from mnist_mlops.evaluation.fieldsets import build_set
from mnist_mlops.imaging import ImageError, preprocess_image
from mnist_mlops.imaging.pools import image_pool


@dataclass(frozen=True)
class SetInputs:
    """One set's images and what the serving preprocessing made of them."""

    labels: np.ndarray  # (N,) int64
    inputs: np.ndarray  # (N, 28, 28) float32 0..255; zeros where refused
    ok: np.ndarray  # (N,) False where the preprocessing refused it (the service: a 4xx)
    blobs: list[bytes] = field(default_factory=list)  # the encoded images; [] when loaded


def build_set_inputs(
    name: str, x_test: np.ndarray, y_test: np.ndarray, n: int, seed: int
) -> SetInputs:
    """Set ``name`` built from the test split (:func:`build_set`) and preprocessed."""
    blobs, labels = build_set(name, x_test, y_test, n, seed)
    return SetInputs(np.asarray(labels, dtype=np.int64), *preprocess_blobs(blobs), blobs)


def preprocess_blobs(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each image through the serving preprocessing: (N, 28, 28) inputs (zeros where
    refused) and (N,) ok, False where the service would answer a 4xx."""
    inputs = np.zeros((len(blobs), 28, 28), dtype=np.float32)
    ok = np.zeros(len(blobs), dtype=bool)
    for i, blob in enumerate(blobs):
        try:
            inputs[i] = preprocess_image(blob)
            ok[i] = True
        except ImageError:
            pass
    return inputs, ok


def _build_one(job: tuple[str, np.ndarray, np.ndarray, int, int]) -> SetInputs:
    return build_set_inputs(*job)


def build_field_inputs(
    names: Iterable[str],
    x_test: np.ndarray,
    y_test: np.ndarray,
    n: int,
    seed: int,
    workers: int | None = None,
) -> dict[str, SetInputs]:
    """Every set of ``names``, in that order, built in up to ``workers`` processes (default:
    one per core). The result is the same for any ``workers``."""
    names = list(names)
    workers = min(workers or os.cpu_count() or 1, len(names))
    # Longest first: writers (all 1,797 digits, six times the others' images) started last
    # would leave the other workers idle while it runs.
    order = sorted(names, key=lambda name: name != "writers")
    jobs = [(name, x_test, y_test, n, seed) for name in order]
    if workers <= 1:
        done = dict(zip(order, map(_build_one, jobs)))
    else:
        with image_pool(workers) as pool:
            done = dict(zip(order, pool.map(_build_one, jobs)))
    return {name: done[name] for name in names}


def save_field_inputs(path: str | os.PathLike[str], sets: Mapping[str, SetInputs]) -> None:
    """The sets' labels, inputs and refusals (not the images) as one ``.npz``, atomically."""
    arrays: dict[str, np.ndarray] = {"names": np.array(list(sets), dtype=str)}
    for name, s in sets.items():
        arrays |= {f"y_{name}": s.labels, f"x_{name}": s.inputs, f"ok_{name}": s.ok}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def load_field_inputs(path: str | os.PathLike[str]) -> dict[str, SetInputs]:
    """What :func:`save_field_inputs` wrote, in the same order."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {
                str(name): SetInputs(npz[f"y_{name}"], npz[f"x_{name}"], npz[f"ok_{name}"])
                for name in npz["names"]
            }
    except (OSError, KeyError, ValueError) as exc:
        raise DataFormatError(f"{path}: not the field stage's set inputs ({exc}); "
                              "rerun the field stage (dvc repro field)") from None  # fmt: skip
