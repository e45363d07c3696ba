"""Champion against challenger: a window of the inference log and the users' corrections.

    python -m pipeline.compare                      # the last compare.window_hours
    python -m pipeline.compare --since 2026-01-05T00:00 --until 2026-01-12T00:00

Reads the requests both models scored (shadow or canary mode) and the corrections users
sent for them, prints one line (agreement, each model's accuracy on the corrected
requests, McNemar's test), writes an HTML page and a JSON file, and exits 0 (challenger
better), 3 (challenger worse), 5 (no clear difference), 4 (too few corrections for a
verdict) or 2 (bad input: no log folder, an empty window, bad params), so a scheduler can
act on the status alone. A command, like the drift report (pipeline/monitor.py): the log
grows outside the repository.

The log folder and the corrections store are the service's (``MNIST_INFERENCE_LOG_DIR``,
``MNIST_FEEDBACK_DB``, the same defaults).
"""

import argparse
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import CompareConfig, load_params
from mnist_mlops.drift.challenger import compare
from mnist_mlops.drift.challenger_report import write_report
from mnist_mlops.drift.pairs import load_pairs
from mnist_mlops.drift.window import window_bounds
from mnist_mlops.monitoring.corrections_reader import read_corrections
from mnist_mlops.monitoring.settings import MonitoringSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, help="default: the service's log folder")
    parser.add_argument("--store", help="corrections store URI (default: the service's)")
    parser.add_argument("--since", help="window start, ISO 8601 (UTC unless it says)")
    parser.add_argument("--until", help="window end, ISO 8601 (default: now)")
    parser.add_argument("--html", type=Path, default=Path("reports/compare.html"))
    parser.add_argument("--json", type=Path, default=Path("reports/compare.json"))
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = CompareConfig.from_params(load_params(args.params))
    settings = MonitoringSettings.from_env()
    start, end = window_bounds(cfg.window_hours, args.since, args.until)
    window = load_pairs(args.log_dir or settings.log_dir, start, end)
    rows = read_corrections(args.store or settings.feedback_uri)
    corrections = {row.request_id: row.digit for row in rows}
    verdict = compare(window.pairs, corrections, cfg.min_corrections, cfg.alpha)
    write_report(verdict, window, args.html, args.json)
    print(verdict.line())
    print(window.describe())
    raise SystemExit(verdict.exit_status)


if __name__ == "__main__":
    run_stage(main)
