"""Build data/processed from a folder of the four MNIST .gz files, offline (for the GPU box).

    PYTHONPATH=src python bench/prepare_data.py FOLDER_WITH_GZ OUT_DIR [--params params.yaml]

The same library calls as the download and split stages, with the same
params, so the split and stats are those that ``dvc repro`` makes.
"""

from __future__ import annotations

import argparse
import tempfile

from mnist_mlops.core.config import DownloadConfig, SplitConfig, load_params
from mnist_mlops.data.fetch import download_mnist
from mnist_mlops.data.splits import make_splits, save_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    download = DownloadConfig.from_params(params)
    split = SplitConfig.from_params(params)
    with tempfile.TemporaryDirectory() as raw:
        download_mnist(
            raw,
            download.sha256,
            [args.mirror_dir],
            timeout_s=download.timeout_s,
            retries=download.retries,
            deadline_s=download.deadline_s,
        )
        splits, stats = make_splits(raw, val_size=split.val_size, seed=split.seed)
        save_splits(splits, stats, args.out_dir)
    print(f"wrote {args.out_dir}: {stats['counts']}")


if __name__ == "__main__":
    main()
