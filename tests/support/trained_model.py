"""A model trained by the real pipeline on real MNIST, for tests of what users would see
(the model's behaviour, the browser UI, drift on real data, the container)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fetch import MIRROR_ENV
from support import ROOT
from support.stages import STAGE_HANG_S, run_stage_cli

# The behaviour and browser tests need a model that reads digits as the default one does,
# not its last fraction of a percent: the repo's params, with fewer epochs than its 12.
TRAINED_MODEL_EPOCHS = 3


def usable(onnx: Path) -> bool:
    """A model.onnx whose model card (beside it) vouches for it: same SHA-256."""
    from mnist_mlops.inference.model_card import ModelCard

    try:
        ModelCard.read_beside(onnx).verify(onnx)
    except (UserError, OSError, ValueError):  # missing, malformed or mismatched: train one
        return False
    return True


def train_real_model(folder: Path) -> Path:
    """Run the real pipeline's stages (download .. export) on real MNIST into ``folder``.

    The data comes from $MNIST_MIRROR, else ../shared/mnist beside the repo, else the
    public mirrors in params.yaml; the params are the repo's own (the default model)
    but for ``TRAINED_MODEL_EPOCHS``.
    """
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = ROOT.parent / "shared" / "mnist"
    mirror = os.environ.get(MIRROR_ENV) or (str(shared) if shared.is_dir() else "")
    params["download"]["mirror"] = mirror
    params["train"].update(accelerator="cpu", devices="1", max_epochs=TRAINED_MODEL_EPOCHS)
    params["mlflow"]["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    m = str(folder / "metrics")
    for stage in (
        ["download", "raw"],
        ["split", "raw", "processed"],
        ["prepare", "processed", "prepared"],
        ["train", "processed", "models/model.ckpt", "--prepared", "prepared",
         "--metrics", f"{m}/train.json", "--curve", f"{m}/curve.csv"],
        ["evaluate", "models/model.ckpt", "processed", "--metrics-dir", m, "--plots-dir", m],
        ["export", "models/model.ckpt", "processed", "models/model.onnx",
         "--metrics", f"{m}/export.json", "--eval-metrics", f"{m}/evaluate.json"],
    ):  # fmt: skip
        proc = run_stage_cli(*stage, cwd=folder, timeout=STAGE_HANG_S)
        assert proc.returncode == 0, f"pipeline.{stage[0]} failed:\n{proc.stderr[-3000:]}"
    return folder / "models" / "model.onnx"
