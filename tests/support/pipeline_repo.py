"""Build a temporary git+DVC repository holding this project's pipeline, on synthetic data.

The one builder the pipeline tests share (real ``dvc repro``, fault injection,
remotes, queued experiments): it copies the pipeline code, ``dvc.yaml`` and the
project's own ``.dvc/config`` (so the default remote is the real one), writes
tiny params that read the synthetic mirror, and commits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from support import ROOT

# bench/results: the report stage renders the benchmarks' tables beside the run's metrics.
CODE = ("pipeline", "src", "serving", "requirements", "bench/results")
# A guard against a hang, not a guess at how long anything takes: a command that works
# ends long before. Waits that can scale with measured work do (``Reproduced.budget`` in
# tests/pipeline/conftest.py).
HANG_S = 1800
FILES = ("dvc.yaml", "bentofile.yaml", ".dvcignore")


def repo_env(repo: Path, tmpdir: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment a stage sees: this repo's code first, its own BentoML store, no
    mirror override, the repo's own inference log and corrections store (the defaults,
    under its monitoring/); ``tmpdir`` (created) becomes TMPDIR, ``extra`` is added last."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "BENTOML_HOME": str(repo / ".bentoml"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
    }
    for name in (
        "MNIST_MIRROR",
        "MLFLOW_TRACKING_URI",
        "MNIST_INFERENCE_LOG_DIR",
        "MNIST_FEEDBACK_DB",
    ):
        env.pop(name, None)
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
    env.update(extra)
    return env


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = HANG_S
) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output unless it exits 0."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def build_repo(
    repo: Path,
    mirror: tuple[Path, dict[str, str]],
    train: dict[str, Any] | None = None,
    download: dict[str, Any] | None = None,
    code: tuple[str, ...] = CODE,
    mlflow: dict[str, Any] | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Create and commit the pipeline repo at ``repo``; ``train``/``download``/``mlflow``
    override the params, ``sections`` any section's keys (applied last)."""
    folder, sha = mirror
    repo.mkdir(parents=True, exist_ok=True)
    for item in code:
        shutil.copytree(
            ROOT / item, repo / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    for item in FILES:
        shutil.copy(ROOT / item, repo)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"].update(mirrors=[], mirror=str(folder), sha256=sha, retries=0)
    params["download"].update(download or {})
    params["split"]["val_size"] = 100
    params["field"]["n_per_set"] = 20
    params["prepare"]["font_samples"] = 1  # every kind still runs, in seconds
    params["export"]["quantize"]["calibration_n"] = 100  # the tiny train split holds 300
    tiny = {"hidden": [32], "max_epochs": 2, "batch_size": 32, "accelerator": "cpu", "devices": "1"}
    params["train"].update({**tiny, **(train or {})})
    params["mlflow"].update(mlflow or {})
    for name, values in (sections or {}).items():
        params[name].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = repo_env(repo)
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "init"], repo, env)
    return repo
