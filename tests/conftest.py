"""Shared fixtures: small synthetic MNIST-format data that tests generate.

Each synthetic class is a bright 7x7 block at its own place on a 28x28 canvas
plus noise, so a small MLP can learn it in one or two epochs on CPU; the IDX
bytes have the real magic numbers, so every reader path is exercised.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.data.idx import encode_idx

FILE_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


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
    for name, array in zip(FILE_NAMES, (x_tr, y_tr, x_te, y_te)):
        raw = encode_idx(array)
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        sha[name] = hashlib.sha256(raw).hexdigest()
    return sha


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A local mirror folder of synthetic MNIST and its checksums."""
    folder = tmp_path_factory.mktemp("mirror")
    return folder, write_mirror(folder)


@pytest.fixture(scope="session")
def processed_dir(tmp_path_factory: pytest.TempPathFactory, synthetic_mirror) -> Path:
    """Synthetic data taken through download + normalise, as the train stage sees it."""
    from mnist_mlops.data.fetch import download_mnist
    from mnist_mlops.data.normalise import make_splits, save_splits

    folder, sha = synthetic_mirror
    raw = tmp_path_factory.mktemp("raw")
    download_mnist(raw, sha, [str(folder)])
    out = tmp_path_factory.mktemp("processed")
    splits, stats = make_splits(raw, val_size=100, seed=0)
    save_splits(splits, stats, out)
    return out


# ---- a real trained model, for the browser and model-behaviour tests -----------------------

REPO = Path(__file__).resolve().parents[1]


def _usable(onnx: Path) -> bool:
    """models/model.onnx with a model.json that vouches for it (same SHA-256)."""
    from mnist_mlops.fileio import read_json, sha256_file

    meta = onnx.with_name("model.json")
    return onnx.is_file() and meta.is_file() and read_json(meta).get("sha256") == sha256_file(onnx)


def train_real_model(folder: Path) -> Path:
    """Run the real pipeline's stages (download .. export) on real MNIST into ``folder``.

    The data comes from $MNIST_MIRROR, else ../shared/mnist beside the repo, else the
    public mirrors in params.yaml; the params are the repo's own (the default model).
    """
    import os
    import subprocess
    import sys

    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    shared = REPO.parent / "shared" / "mnist"
    mirror = os.environ.get("MNIST_MIRROR") or (str(shared) if shared.is_dir() else "")
    params["download"]["mirror"] = mirror
    params["train"].update(accelerator="cpu", devices="1")
    params["mlflow"]["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    env.pop("MNIST_MIRROR", None)  # the params above already name it
    m = str(folder / "metrics")
    for stage in (
        ["download", "raw"],
        ["normalise", "raw", "processed"],
        ["train", "processed", "models/model.ckpt", "--metrics", f"{m}/train.json",
         "--curve", f"{m}/curve.csv"],
        ["evaluate", "models/model.ckpt", "processed", "--metrics-dir", m, "--plots-dir", m],
        ["export", "models/model.ckpt", "processed", "models/model.onnx",
         "--metrics", f"{m}/export.json", "--eval-metrics", f"{m}/evaluate.json"],
    ):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", f"pipeline.{stage[0]}", *stage[1:]],
            cwd=folder, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, f"pipeline.{stage[0]} failed:\n{proc.stderr[-3000:]}"
    return folder / "models" / "model.onnx"


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the real pipeline on real MNIST (model.json beside it).

    $MNIST_TRAINED_MODEL or the repo's own models/model.onnx (after `dvc repro`) is
    used when it is there and vouched for; otherwise the pipeline is run once per
    test session (a few minutes on two CPU cores), as CI does in a clean clone.
    """
    import os

    for candidate in (os.environ.get("MNIST_TRAINED_MODEL"), REPO / "models" / "model.onnx"):
        if candidate and _usable(Path(candidate)):
            return Path(candidate)
    return train_real_model(tmp_path_factory.mktemp("trained"))
