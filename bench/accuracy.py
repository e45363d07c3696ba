"""Test accuracy of a training config over several seeds, without MLflow (runs on the GPU box).

    python bench/accuracy.py data/processed --overlay bench/params-best.yaml --seeds 1,2,3
    python bench/accuracy.py data/processed --set hidden=[1024,1024] --set lr=0.003
    python bench/accuracy.py data/processed --quick --out /tmp/acc.jsonl  # proves it runs

Each seed runs ``train`` exactly as the train stage does (best-validation
checkpoint kept), then scores that checkpoint on the test split, as the
evaluate stage would. Writes one JSON record per run (``--out``, appended), so
a sweep over many configs in one device call leaves one file to read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import accuracy_on_test, parse_sets  # bench/ is sys.path[0]

from mnist_mlops.core.config import TrainConfig, load_params
from mnist_mlops.data.splits import load_splits
from mnist_mlops.train.checkpoint import load_net
from mnist_mlops.train.training import TrainInputs, train

# One epoch of a small net: every step of a run, in seconds.
QUICK = {"max_epochs": 1, "hidden": [32]}


def checkpoint_accuracy(checkpoint: Path, processed_dir: str) -> float:
    """The checkpoint's accuracy on the test split, as the evaluate stage would score it."""
    splits, _ = load_splits(processed_dir)
    x, y = torch.from_numpy(splits.x_test), torch.from_numpy(splits.y_test)
    return accuracy_on_test(load_net(checkpoint), x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed_dir")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--overlay", action="append", default=[], help="YAML of changed keys, e.g. params-best"
    )
    parser.add_argument("--set", action="append", default=[], help="train.KEY=VALUE override")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--name", default="")
    parser.add_argument("--out", default="bench/results/accuracy.jsonl")
    parser.add_argument("--quick", action="store_true", help=f"as --set of {QUICK}: proves it runs")
    args = parser.parse_args()

    overrides = (QUICK if args.quick else {}) | parse_sets(args.set)
    base = TrainConfig.from_params(load_params(args.params, *args.overlay), **overrides)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = base.replace(seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = train(cfg, TrainInputs(args.processed_dir), Path(tmp) / "model.ckpt")
            wall = time.perf_counter() - started
            acc = checkpoint_accuracy(Path(tmp) / "model.ckpt", args.processed_dir)
        record = {
            "name": args.name,
            "seed": seed,
            "test_acc": acc,
            "best_val_acc": result.best_val_acc,
            "fit_s": round(result.seconds, 2),
            "wall_s": round(wall, 2),
            "device": result.device,
            "epochs": result.epochs,
            "overrides": overrides,
            "params": " + ".join([args.params, *args.overlay]),
        }
        print(json.dumps(record), flush=True)
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
