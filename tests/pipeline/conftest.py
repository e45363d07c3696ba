"""The pipeline tests' shared repository: built and reproduced once per session.

A full ``dvc repro`` is the most expensive thing these tests do, and most of them only
need one to have happened: the repro, remote and fault tests all read this one (the
fault tests copy it before they break anything).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.pipeline_repo import HANG_S, build_repo, repo_env, run


@dataclass(frozen=True)
class Reproduced:
    """A git+DVC repo of the pipeline (tiny params, synthetic data) after ``dvc repro``."""

    path: Path
    env: dict[str, str]
    stdout: str  # what the first ``dvc repro`` printed
    seconds: float  # how long it took, on this machine under its load of the moment

    @property
    def budget(self) -> float:
        """Seconds allowed for any one repro (or wait for one) here: none does more work
        than the first, so a slower or busier machine gets more."""
        return 60 + 3 * self.seconds


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory, synthetic_mirror) -> Reproduced:
    """The pipeline reproduced once. Tests may commit it, add a git remote, push, or change
    a param and repro again, but leave it reproduced (every stage up to date); a test that
    breaks or kills anything works on a copy."""
    path = build_repo(
        tmp_path_factory.mktemp("reproduced") / "repo",
        synthetic_mirror,
        train={"deterministic": True},  # the fault tests compare a retrain bit for bit
    )
    env = repo_env(path)
    started = time.monotonic()
    stdout = run(["dvc", "repro"], path, env, timeout=HANG_S).stdout
    return Reproduced(path, env, stdout, time.monotonic() - started)
