"""Prepare stage: extra training digits that look like what the service hands the model.

    python -m pipeline.prepare data/processed data/prepared

From the train split only: each digit through the serving preprocessing, each
redrawn with a thick marker, and digits typed in fonts the field sets do not use
(see src/mnist_mlops/prepare/variants.py). Writes ``variants.npz`` and ``counts.json``.
"""

import argparse
import logging
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import PrepareConfig, load_params
from mnist_mlops.core.fileio import write_json
from mnist_mlops.data.prepared import save_variants
from mnist_mlops.data.splits import load_splits
from mnist_mlops.prepare.variants import build_variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = PrepareConfig.from_params(load_params(args.params))
    splits, _ = load_splits(args.processed_dir)
    x, y = splits.split("train")
    variants = build_variants(x, y, cfg.kinds, cfg.fonts, cfg.font_samples, cfg.seed)
    counts = save_variants(variants, Path(args.out_dir))
    write_json(Path(args.out_dir) / "counts.json", counts)
    logging.getLogger(__name__).info("extra training digits: %s", counts)


if __name__ == "__main__":
    run_stage(main)
