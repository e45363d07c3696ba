"""Helpers the tests import (``from support.x import ...``); fixtures live in conftest.py files.

pyproject.toml puts ``tests/`` on the import path, so this is the one importable place for
code more than one test folder needs: synthetic data, a loopback HTTP mirror, a real MLflow
server on PostgreSQL, stage CLIs in subprocesses, a tracked and a real trained model, a real
``bentoml serve``, temporary git+DVC pipeline repos, and drawn digits.
"""

from __future__ import annotations

from pathlib import Path

# The repository root: test files refer to it through this name, so moving a test folder
# never changes which directory a test reads params.yaml, scripts/ or dvc.yaml from.
ROOT = Path(__file__).resolve().parents[2]
