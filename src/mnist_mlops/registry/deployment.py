"""The deployment folder: what the registry's champion serves, as files everything builds from.

    served = materialise(uri, "models:/mnist-mlp@champion", Path("models/champion"), smoke)
    print(served_line(uri, served))  # serving mnist-mlp v3 (int8, 1a2b3c4d5e6f) from ...

``models/champion/`` holds ``served.json`` (the version's
:class:`~mnist_mlops.inference.serving_choice.ServingChoice`), the artifact it names with
its card (:func:`~mnist_mlops.registry.served.fetch`, hash-checked), and ``smoke.npz``:
MNIST test digits with their labels that a service answers before it swaps a model in.
The ``champion`` stage writes it, the ``package`` stage, the image and ``make serve`` take
it, so what they ship is what the alias names, never the last file trained.

The folder is replaced as a whole (built beside it, then renamed), and its bytes depend
only on the version and the digits: when the champion did not move, nothing changes and
DVC does not package again.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.core.fileio import atomic_open
from mnist_mlops.registry.served import GATE_REASON_TAG, ServedVersion, fetch, resolve

SMOKE_NAME = "smoke.npz"  # beside served.json
SMOKE_PER_CLASS = 10  # test digits of each class in the smoke set
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same digits give the same bytes


def smoke_set(
    x_test: np.ndarray, y_test: np.ndarray, per_class: int = SMOKE_PER_CLASS
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` test digits of each class, in test-split order: fixed by the
    split alone, every class present, small enough to answer in milliseconds."""
    y = np.asarray(y_test, dtype=np.int64)
    picks = np.sort(np.concatenate([np.flatnonzero(y == d)[:per_class] for d in range(10)]))
    return np.asarray(x_test[picks], dtype=np.uint8), y[picks]


def write_smoke(path: str | os.PathLike[str], x: np.ndarray, y: np.ndarray) -> None:
    """``x`` uint8 (N, 28, 28) and ``y`` int64 (N,) as an .npz with fixed timestamps."""
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w") as npz:
        for name, array in (("x", x.astype(np.uint8)), ("y", y.astype(np.int64))):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(array), allow_pickle=False)
            npz.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), data.getvalue())


def read_smoke(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The smoke set's digits and labels; one line naming the file and the fix if unusable."""
    fix = "run `dvc repro champion` (it writes the smoke set beside served.json)"
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{path}: no smoke set ({exc}); {fix}") from None
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != x.shape[:1]:
        raise DataFormatError(f"{path}: not uint8 (N, 28, 28) digits with N labels; {fix}")
    return x, y.astype(np.int64)


def materialise(
    tracking_uri: str, model_uri: str, folder: Path, smoke: tuple[np.ndarray, np.ndarray]
) -> ServedVersion:
    """Resolve ``model_uri``, fetch its artifact and card with ``served.json`` and write the
    smoke set, into a folder built beside ``folder`` that then replaces it."""
    served = resolve(tracking_uri, model_uri)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        fetch(tracking_uri, served, staging)
        write_smoke(staging / SMOKE_NAME, *smoke)
        staging.chmod(0o755)  # mkdtemp's 0700 would keep others (the image's user) out
        _replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return served


def _replace(new: Path, folder: Path) -> None:
    """``new`` renamed to ``folder``; an older ``folder`` moved aside first, then deleted."""
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        folder.rename(old)
    try:
        new.rename(folder)
    except OSError:
        if old.exists() and not folder.exists():
            old.rename(folder)  # put the previous deployment back
        raise
    shutil.rmtree(old, ignore_errors=True)


def served_line(tracking_uri: str, served: ServedVersion) -> str:
    """One line: which version serves and why, and a newer version the gate refused."""
    line = f"serving {served.describe()}: {served.reason}"
    newest = _newest(tracking_uri, served.model_name)
    if newest is not None and int(newest.version) > int(served.version):
        tags = dict(newest.tags)
        why = tags.get(GATE_REASON_TAG) or "not judged by the gate yet"
        line += f"; newer v{newest.version} is {tags.get('gate_decision', 'not promoted')}: {why}"
    return line


def _newest(tracking_uri: str, model_name: str) -> Any:
    """The highest version of ``model_name`` (None when the registry cannot say)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with contextlib.suppress(MlflowException, OSError):
        found = client.search_model_versions(f"name = '{model_name}'")
        return max(found, key=lambda v: int(v.version), default=None)
    return None
