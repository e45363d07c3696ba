"""One real, small training run tracked in MLflow, and the checks every tracked run must pass.

Training is the slow part of the training and tracking tests; most of them only read a
finished run, so the session trains once (``tracked_run`` in tests/conftest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The per-epoch metrics every run logs (mnist_mlops.train.trainer.HISTORY_KEYS, spelled
# out here so that a renamed or dropped metric fails the tests instead of following along).
HISTORY_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")

# Small and on CPU; the rest (optimizer, schedule, seed, deterministic...) is params.yaml's.
SMALL_TRAIN = dict(
    hidden=(32,), max_epochs=3, batch_size=32, lr=3e-3, accelerator="cpu", devices="1"
)


@dataclass(frozen=True)
class TrainedRun:
    """``train`` run once, tracked in a sqlite MLflow store, and what it predicted."""

    result: Any  # the TrainResult
    config: Any  # the TrainConfig it ran with (SMALL_TRAIN over params.yaml)
    folder: Path  # model.ckpt, and mlflow.db with its mlruns/ artifacts
    tracking_uri: str
    test_logits: dict[int, Any]  # epoch (from 0) -> the net's logits on the test split then


def train_tracked(processed_dir: Path, folder: Path, repo_params: dict[str, Any]) -> TrainedRun:
    """Train SMALL_TRAIN on ``processed_dir`` into ``folder``, tracked in a sqlite store
    there; system metrics are sampled often so even this short run has some."""
    import torch
    from pytorch_lightning.callbacks import Callback

    from mnist_mlops.core.config import MlflowConfig, TrainConfig
    from mnist_mlops.data.splits import load_splits
    from mnist_mlops.tracking.runs import prepare_store
    from mnist_mlops.train.training import Tracking, TrainInputs, train

    class TestSetLogits(Callback):
        """The net's test-split logits (eval mode) at each epoch's end: ModelCheckpoint
        saves after this hook and before the next optimizer step, so these are the
        predictions of the weights that epoch's checkpoint holds."""

        def __init__(self, images: np.ndarray) -> None:
            self.images = torch.from_numpy(images)
            self.by_epoch: dict[int, torch.Tensor] = {}

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            net, was_training = pl_module.net, pl_module.net.training
            net.eval()
            with torch.no_grad():
                self.by_epoch[trainer.current_epoch] = net(self.images).clone()
            net.train(was_training)

    uri = f"sqlite:///{folder}/mlflow.db"
    cfg = TrainConfig.from_params(repo_params, **SMALL_TRAIN)
    logits = TestSetLogits(load_splits(processed_dir)[0].x_test)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        # Lightning's logger sets $MLFLOW_TRACKING_URI; setting it here first makes the
        # context undo it, so later tests' subprocesses do not find this run's store.
        env.setenv("MLFLOW_TRACKING_URI", uri)
        prepare_store(uri, "tracked")
        result = train(
            cfg,
            TrainInputs(processed_dir),
            folder / "model.ckpt",
            Tracking(MlflowConfig.from_params(repo_params, tracking_uri=uri, experiment="tracked")),
            callbacks=[logits],
        )
    return TrainedRun(result, cfg, folder, uri, logits.by_epoch)


def check_complete_run(
    client: Any, run_id: str, epochs: int, curve: list[dict] | None = None
) -> None:
    """Params once each, per-epoch histories (equal to ``curve`` when given), dataset
    inputs with digests, system metrics: what every tracked training run must carry."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED", run.info
    params = run.data.params
    assert params["max_epochs"] == str(epochs) and "dropout" in params
    # Each parameter once, under its flat name (no Lightning "cfg/..." copies).
    assert not [k for k in params if "/" in k], sorted(params)
    for key in HISTORY_KEYS:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert len(history) == epochs, (key, len(history))
        if curve is not None:
            assert [m.value for m in history] == pytest.approx([r[key] for r in curve]), key
    assert run.data.metrics["train/seconds"] > 0
    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"train", "val"}, inputs
    assert all(len(d.digest) >= 8 and d.source_type == "local" for d in inputs.values())
    assert inputs["train"].digest != inputs["val"].digest
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
