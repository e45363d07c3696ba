"""One training run spread over 2 processes with Lightning's DDP strategy (CPU, gloo).

The same params then scale to several GPUs or nodes (``train.strategy: ddp``,
``train.devices``, ``train.num_nodes``). Run in a real subprocess because DDP
re-launches the script it was started from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_mlops.data.splits import load_splits
from mnist_mlops.tracking.runs import client
from mnist_mlops.train.checkpoint import load_net

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("ddp_train.py")


@pytest.fixture(scope="module")
def ddp_run(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(processed_dir), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_both_ranks_trained_on_disjoint_equal_shards(ddp_run, processed_dir):
    ranks = _ranks(ddp_run)
    assert [r["global_rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["epochs"] == 2 for r in ranks)
    shards = [set(r["seen"]) for r in ranks]
    n_train = len(load_splits(processed_dir)[0].y_train)
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == n_train // 2
    assert shards[0].isdisjoint(shards[1])
    assert len(shards[0] | shards[1]) == n_train  # together, one pass over the training set


def test_checkpoint_written_once_by_rank_zero_and_it_learned(ddp_run, processed_dir):
    assert sorted(p.name for p in ddp_run.iterdir() if "ckpt" in p.name) == ["model.ckpt"]
    splits, _ = load_splits(processed_dir)
    with torch.no_grad():
        pred = load_net(ddp_run / "model.ckpt")(torch.from_numpy(splits.x_test)).argmax(1)
    assert (pred.numpy() == splits.y_test).mean() >= 0.8


def test_metrics_are_synced_and_tracked_once(ddp_run):
    rank0, rank1 = _ranks(ddp_run)
    # val/acc is reduced over both shards, so both processes agree on the best score.
    assert rank0["best_val_acc"] == pytest.approx(rank1["best_val_acc"])
    assert rank0["best_val_acc"] >= 0.8
    assert [h["epoch"] for h in rank0["history"]] == [1, 2] and rank1["history"] == []
    assert all(np.isfinite(v) for h in rank0["history"] for v in h.values())
    tracking = client(f"sqlite:///{ddp_run}/mlflow.db")
    runs = tracking.search_runs([tracking.get_experiment_by_name("ddp").experiment_id])
    assert [r.info.run_id for r in runs] == [rank0["run_id"]] and rank1["run_id"] == ""
