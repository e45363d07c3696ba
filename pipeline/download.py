"""Download stage: fetch the four MNIST IDX files, verified by SHA-256.

    python -m pipeline.download data/raw
    MNIST_MIRROR=../shared/mnist python -m pipeline.download data/raw   # offline mirror

Reads the ``download`` section of params.yaml.
"""

import argparse

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import DownloadConfig, load_params
from mnist_mlops.data.fetch import download_mnist, mirror_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the decompressed IDX files")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = DownloadConfig.from_params(load_params(args.params))
    download_mnist(
        args.out_dir,
        cfg.sha256,
        mirror_list(cfg.mirrors, cfg.mirror),
        timeout_s=cfg.timeout_s,
        retries=cfg.retries,
        deadline_s=cfg.deadline_s,
    )


if __name__ == "__main__":
    run_stage(main)
