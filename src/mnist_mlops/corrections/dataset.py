"""The corrections dataset: digits users said the service misread, as the model saw them.

Written by ``python -m pipeline.corrections`` (DVC tracks the folder), read by
training (the ``train`` part) and by the field stage (the ``holdout`` part, scored as one
more set). Each part is one ``.npz`` of ``x`` (N, 28, 28) uint8 model inputs, ``y`` the
corrected digits and ``request_id`` the service's ids, so every image can be traced back to
the logged request and the correction. Both parts always exist (empty when nobody has
corrected anything), so the pipeline runs the same with or without corrections.

The files are byte-identical for identical contents (fixed zip timestamps): re-exporting
unchanged corrections does not make DVC retrain.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.core.fileio import atomic_open

PARTS = ("train", "holdout")
HOLDOUT_SET = "corrections"  # the field stage's name for the holdout part
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: no wall clock in the bytes


@dataclass(frozen=True)
class CorrectionSet:
    """One part of the corrections dataset."""

    x: np.ndarray  # (N, 28, 28) uint8, what the model saw
    y: np.ndarray  # (N,) int64, what the user said it was
    request_id: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def empty(cls) -> CorrectionSet:
        return cls(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), np.zeros(0, "<U1"))


def part_path(folder: str | os.PathLike[str], part: str) -> Path:
    return Path(folder) / f"{part}.npz"


def save_part(folder: str | os.PathLike[str], part: str, data: CorrectionSet) -> Path:
    """Write one part atomically, with the same bytes for the same contents."""
    arrays = {
        "x": np.ascontiguousarray(data.x, dtype=np.uint8),
        "y": np.asarray(data.y, dtype=np.int64),
        "request_id": np.asarray(data.request_id, dtype=str),
    }
    path = part_path(folder, part)
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _EPOCH), buffer.getvalue())
    return path


def load_part(folder: str | os.PathLike[str], part: str) -> CorrectionSet:
    """One part, validated; a missing folder or file is an empty part (no corrections yet)."""
    path = part_path(folder, part)
    if not path.exists():
        return CorrectionSet.empty()
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = CorrectionSet(npz["x"], npz["y"], npz["request_id"])
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(
            f"{path}: unreadable ({exc}); rerun python -m pipeline.corrections"
        ) from None
    n = len(data.y)
    if data.x.dtype != np.uint8 or data.x.shape != (n, 28, 28) or data.request_id.shape != (n,):
        raise DataFormatError(f"{path}: not (N, 28, 28) uint8 images with N labels and ids")
    if n and (data.y.min() < 0 or data.y.max() > 9):
        raise DataFormatError(f"{path}: digits outside 0..9; rerun the export")
    return data
