"""Drift report: a window of the inference log against the pipeline's reference.

    python -m pipeline.monitor                      # the last monitor.window_hours
    python -m pipeline.monitor --since 2026-01-05T00:00 --until 2026-01-06T00:00

Prints one line (the verdict and the columns that moved), writes Evidently's HTML report
and a JSON file, and exits 0 (no drift), 3 (drift), 4 (too few answered images for a
verdict) or 2 (bad input: no log folder, no reference, bad params), so a scheduler can
act on the status alone. A command rather than a DVC stage: the log grows by the minute
outside the repository, and checking it must not rewrite dvc.lock; the reference it
compares with is the ``reference`` stage's output, which is reproducible.

The log folder is the service's (``MNIST_INFERENCE_LOG_DIR``, the same default).
"""

import argparse
import logging
from pathlib import Path

import pandas as pd

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import MonitorConfig, load_params
from mnist_mlops.core.errors import UserError
from mnist_mlops.drift.report import DriftSettings, compare, write_report
from mnist_mlops.drift.window import load_window, window_bounds
from mnist_mlops.monitoring.settings import MonitoringSettings

log = logging.getLogger(__name__)


def read_reference(path: Path, sets: tuple[str, ...]) -> pd.DataFrame:
    """The reference stage's rows of ``sets``; a UserError naming the fix otherwise."""
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path}: no readable reference ({exc}); run `dvc repro reference`"
        ) from None
    unknown = sorted(set(sets) - set(table["set"]))
    if unknown:
        raise UserError(
            f"monitor.reference_sets: {unknown} not in {path} (it has "
            f"{sorted(set(table['set']))}); fix params.yaml or rerun `dvc repro reference`"
        )
    return table[table["set"].isin(sets)].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, help="default: the service's log folder")
    parser.add_argument("--reference", type=Path, default=Path("data/reference.parquet"))
    parser.add_argument("--since", help="window start, ISO 8601 (UTC unless it says)")
    parser.add_argument("--until", help="window end, ISO 8601 (default: now)")
    parser.add_argument("--html", type=Path, default=Path("reports/drift.html"))
    parser.add_argument("--json", type=Path, default=Path("reports/drift.json"))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = MonitorConfig.from_params(load_params(args.params))
    log_dir = args.log_dir or MonitoringSettings.from_env().log_dir
    start, end = window_bounds(cfg.window_hours, args.since, args.until)
    reference = read_reference(args.reference, cfg.reference_sets)
    window = load_window(log_dir, start, end)
    settings = DriftSettings(
        num_method=cfg.num_method,
        num_threshold=cfg.num_threshold,
        cat_method=cfg.cat_method,
        cat_threshold=cfg.cat_threshold,
        drift_share=cfg.drift_share,
        min_rows=cfg.min_rows,
        column_methods=dict(cfg.column_methods),
        column_thresholds=dict(cfg.column_thresholds),
    )
    verdict, snapshot = compare(reference, window.frame, settings, skipped=window.skipped)
    write_report(verdict, snapshot, args.html, args.json, window.describe())
    print(verdict.line(cfg.min_rows))
    raise SystemExit(verdict.exit_status)


if __name__ == "__main__":
    run_stage(main)
