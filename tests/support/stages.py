"""Run the pipeline's stage CLIs as dvc does (a subprocess each) with params the test chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mnist_mlops.data.fetch import MIRROR_ENV
from support import ROOT

# A guard against a hung stage, not a guess at how long one takes: it ends when it ends.
STAGE_HANG_S = 3600


def run_stage_cli(
    module: str, *args: str, cwd: Path = ROOT, timeout: float = STAGE_HANG_S
) -> subprocess.CompletedProcess:
    """``python -m pipeline.<module> args...`` in a subprocess, as dvc runs it (no mirror env)."""
    env = {k: v for k, v in os.environ.items() if k != MIRROR_ENV}
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    return subprocess.run(
        [sys.executable, "-m", f"pipeline.{module}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def registry_cli(
    params_path: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m pipeline.registry --params PATH args...`` (each command returns in
    seconds: ``timeout`` is a hang guard)."""
    return run_stage_cli("registry", "--params", str(params_path), *args, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line a stage CLI prints on bad input (exit status 2)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def write_params(path: Path, params: dict[str, Any], **updates: dict[str, Any]) -> Path:
    """Write ``params`` with some keys of some sections changed (``split={"val_size": 100}``)."""
    merged = {name: {**values, **updates.get(name, {})} for name, values in params.items()}
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path
