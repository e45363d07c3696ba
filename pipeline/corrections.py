"""Corrections stage: users' corrections joined with their logged inputs, as a dataset.

    python -m pipeline.corrections data/corrections
    python -m pipeline.corrections data/corrections --store postgresql://... \
        --log-dir /var/log/mnist

Reads the corrections store and the inference log the service writes (its
``MNIST_FEEDBACK_DB`` and ``MNIST_INFERENCE_LOG_DIR``, the same defaults), splits the
corrections by a hash of the request id (``corrections.holdout_fraction``) and writes
``train.npz``, ``holdout.npz`` and ``summary.json`` (src/mnist_mlops/corrections/dataset.py).
It is the ``corrections`` stage of dvc.yaml, so DVC versions the dataset: run it, look at
the line it prints, then ``dvc repro`` (which reruns it and everything downstream when
the corrections changed). With no store yet it writes empty parts: the pipeline then
trains and gates exactly as without corrections.
"""

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import CorrectionsConfig, load_params
from mnist_mlops.core.fileio import write_json
from mnist_mlops.corrections.export import export_corrections
from mnist_mlops.monitoring.corrections_reader import load_corrections
from mnist_mlops.monitoring.settings import MonitoringSettings

SQLITE = "sqlite:///"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--store", help="corrections store URI (default: the service's)")
    parser.add_argument("--log-dir", type=Path, help="inference log folder (the service's)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = CorrectionsConfig.from_params(load_params(args.params))
    settings = MonitoringSettings.from_env()
    store = args.store or settings.feedback_uri
    log_dir = args.log_dir or settings.log_dir
    skipped: list[str] = []
    if store.startswith(SQLITE) and not Path(store[len(SQLITE) :]).exists():
        corrections = []  # no service has stored anything here yet; do not create the file
        logging.getLogger(__name__).info("%s: no corrections store yet", store)
    else:
        corrections = load_corrections(store, log_dir, skipped)
    summary = export_corrections(corrections, args.out_dir, cfg.holdout_fraction, len(skipped))
    write_json(args.out_dir / "summary.json", asdict(summary))
    print(summary.line())


if __name__ == "__main__":
    run_stage(main)
