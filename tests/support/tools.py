"""The one check that the system tools a test drives (installed by setup's apt step) are on
PATH, so a missing tool fails the test with the fix named instead of a FileNotFoundError."""

from __future__ import annotations

import shutil

import pytest


def need(*tools: str) -> None:
    """Fails the test, naming the fix, unless every one of ``tools`` is on PATH."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{' '.join(missing)} not found; run scripts/install_system_packages.sh")
