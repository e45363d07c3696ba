"""Report stage: the results page, rendered from the metrics, params and bench results.

    python -m pipeline.report docs/results.md           # (dvc repro report) write it, atomically
    python -m pipeline.report docs/results.md --check   # exit 2 when it is not what the files say

Reads the files named in ``mnist_mlops.reporting.results.READS`` under ``--root``.
"""

import argparse
import logging
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.reporting.results import write_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the page to write, relative to --root")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    unchanged = write_page(args.root, args.out, check=args.check)
    logging.getLogger(__name__).info(
        "%s %s", args.out, "is current" if unchanged else "rendered again"
    )


if __name__ == "__main__":
    run_stage(main)
