"""Test accuracy of a training config over several seeds, without MLflow (runs on the GPU box).

    python bench/accuracy.py data/processed --overlay bench/params-best.yaml --seeds 1,2,3
    python bench/accuracy.py data/processed --set hidden=[1024,1024] --set lr=0.003

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
import yaml

from mnist_mlops.core.config import TrainConfig, load_params
from mnist_mlops.data.splits import load_splits
from mnist_mlops.train.checkpoint import load_net
from mnist_mlops.train.training import train


def parse_sets(pairs: list[str]) -> dict[str, object]:
    """``key=value`` overrides, values read as YAML (so ``[1024, 1024]`` is a list)."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


@torch.no_grad()
def test_accuracy(checkpoint: Path, processed_dir: str) -> float:
    splits, _ = load_splits(processed_dir)
    net = load_net(checkpoint)
    pred = net(torch.from_numpy(splits.x_test)).argmax(1).numpy()
    return float((pred == splits.y_test).mean())


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
    args = parser.parse_args()

    base = TrainConfig.from_params(load_params(args.params, *args.overlay), **parse_sets(args.set))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = base.replace(seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = train(cfg, args.processed_dir, Path(tmp) / "model.ckpt", mlflow_cfg=None)
            wall = time.perf_counter() - started
            acc = test_accuracy(Path(tmp) / "model.ckpt", args.processed_dir)
        record = {
            "name": args.name,
            "seed": seed,
            "test_acc": acc,
            "best_val_acc": result.best_val_acc,
            "fit_s": round(result.seconds, 2),
            "wall_s": round(wall, 2),
            "device": result.device,
            "epochs": result.epochs,
            "overrides": parse_sets(args.set),
            "params": " + ".join([args.params, *args.overlay]),
        }
        print(json.dumps(record), flush=True)
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
