"""Shared plumbing for the thin stage CLIs in ``pipeline/``.

``run_stage`` configures logging, runs the stage, and turns a
:class:`~mnist_mlops.core.errors.UserError` into one line on stderr and exit code 2,
so users see the problem and the fix instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable

from mnist_mlops.core.errors import UserError


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's ``main`` as a command-line program."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("pytorch_lightning", "lightning", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Lightning 2.6 on torch 2.14 warns about torch's own pytree API: not actionable here.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            "error: interrupted; outputs were left as they were (writes are atomic)",
            file=sys.stderr,
        )
        sys.exit(130)
