"""Split stage: seeded train/val split, and pixel stats from the training split only.

    python -m pipeline.split data/raw data/processed

Writes ``mnist.npz`` (uint8 images, int64 labels per split) and ``stats.json``.
"""

import argparse
import logging

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import SplitConfig, load_params
from mnist_mlops.data.splits import make_splits, save_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = SplitConfig.from_params(load_params(args.params))
    splits, stats = make_splits(args.raw_dir, val_size=cfg.val_size, seed=cfg.seed)
    save_splits(splits, stats, args.out_dir)
    logging.getLogger(__name__).info(
        "splits %s, mean %.4f, std %.4f", stats["counts"], stats["mean"], stats["std"]
    )


if __name__ == "__main__":
    run_stage(main)
