"""Real training on synthetic data with a real MLflow sqlite store, then ONNX export.

The tracked run is the session's ``tracked_run`` (tests/conftest.py), shared with the
tracking tests; one more run of its config, untracked, checks that the seed alone
decides the numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_mlops.data.splits import load_splits
from mnist_mlops.export.to_onnx import (
    INPUT_NAME,
    as_model_input,
    export_and_verify,
    inference_session,
)
from mnist_mlops.tracking.runs import client
from mnist_mlops.train.checkpoint import load_net
from mnist_mlops.train.trainer import HISTORY_KEYS
from mnist_mlops.train.training import TrainInputs, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def untracked(tracked_run, processed_dir, tmp_path_factory):
    """The tracked run's config again with ``tracking=None`` (the GPU box has no MLflow):
    its folder and result."""
    folder = tmp_path_factory.mktemp("untracked")
    return folder, train(tracked_run.config, TrainInputs(processed_dir), folder / "model.ckpt")


def test_model_learns_and_history_is_per_epoch(tracked_run):
    result, epochs = tracked_run.result, tracked_run.config.max_epochs
    assert result.epochs == epochs and result.device == "cpu"
    assert [h["epoch"] for h in result.history] == list(range(1, epochs + 1))
    assert result.best_val_acc >= 0.9
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]


def test_mlflow_run_has_params_metrics_and_tags(tracked_run):
    result, tracking = tracked_run.result, client(tracked_run.tracking_uri)
    run = tracking.get_run(result.run_id)
    assert run.data.params["hidden"] == str(tracked_run.config.hidden)
    assert run.data.params["max_epochs"] == str(tracked_run.config.max_epochs)
    assert len(run.data.tags["dataset_sha256"]) == 64
    assert "git_commit" in run.data.tags
    for key in HISTORY_KEYS:
        history = tracking.get_metric_history(result.run_id, key)
        assert len(history) == tracked_run.config.max_epochs


def test_checkpoint_reloads_to_the_same_predictions(tracked_run, processed_dir):
    """The reloaded net predicts exactly what the trained one did at the epoch the
    checkpoint kept, and that is the epoch with the best validation accuracy."""
    ckpt, history = tracked_run.folder / "model.ckpt", tracked_run.result.history
    kept = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]
    assert history[kept]["val/acc"] == max(h["val/acc"] for h in history), (kept, history)
    with torch.no_grad():
        reloaded = load_net(ckpt)(torch.from_numpy(load_splits(processed_dir)[0].x_test))
    expected = tracked_run.test_logits[kept]
    assert torch.equal(reloaded.argmax(1), expected.argmax(1))
    torch.testing.assert_close(reloaded, expected, rtol=0, atol=1e-6)


def test_export_parity_and_dynamic_batch(tracked_run, processed_dir, tmp_path):
    splits, _ = load_splits(processed_dir)
    net = load_net(tracked_run.folder / "model.ckpt")
    parity = export_and_verify(net, tmp_path / "model.onnx", splits.x_test)
    assert parity.n_images == 200 and parity.argmax_mismatches == 0 and parity.max_abs_diff <= 1e-4
    session = inference_session(tmp_path / "model.onnx")
    for n in (1, 7, 200):
        flat = splits.x_test[:n].reshape(n, 784)
        out = session.run(None, {INPUT_NAME: as_model_input(flat)})[0]
        assert out.shape == (n, 10)
    assert [d for d in session.get_inputs()[0].shape] == ["batch", 28, 28]


def test_same_seed_on_cpu_gives_identical_metrics(tracked_run, untracked):
    """Same seed and data, deterministic CPU training: tracking or not, every number agrees,
    and so do the weights the two checkpoints hold."""
    folder, rerun = untracked
    assert rerun.history == tracked_run.result.history
    assert rerun.best_val_acc == tracked_run.result.best_val_acc
    weights = [
        torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        for path in (tracked_run.folder / "model.ckpt", folder / "model.ckpt")
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_untracked_training_writes_checkpoint_and_history(untracked, tracked_run):
    folder, rerun = untracked
    assert rerun.run_id == "" and rerun.experiment_id == "" and (folder / "model.ckpt").is_file()
    assert [h["epoch"] for h in rerun.history] == list(range(1, tracked_run.config.max_epochs + 1))
    assert all(np.isfinite(h[k]) for h in rerun.history for k in HISTORY_KEYS)
