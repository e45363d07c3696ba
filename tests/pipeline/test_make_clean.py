"""``make clean`` removes exactly the pipeline's cached outputs and nothing git tracks.

Run on a copy of the repository's tracked pipeline folders and Makefile in a fresh git
repository, with every cached output that dvc.yaml declares created beside them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support import ROOT

FOLDERS = ("data", "models", "plots", "metrics", "bentos")


def cached_outputs() -> list[str]:
    """Every path dvc.yaml declares as an output kept in DVC's cache (not ``cache: false``)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for section in ("outs", "metrics", "plots"):
            for entry in stage.get(section, []):
                path, options = (
                    next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                )
                if (options or {}).get("cache", True):
                    paths.append(path)
    return paths


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def test_make_clean_removes_cached_outputs_and_keeps_tracked_files(tmp_path):
    if shutil.which("make") is None or not (ROOT / ".git").exists():
        pytest.skip("needs make and a git checkout")
    tracked = git("ls-files", "--", "Makefile", *FOLDERS, cwd=ROOT).split()
    repo = tmp_path / "repo"
    for name in tracked:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, repo / name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tracked", cwd=repo)
    outputs = cached_outputs()
    assert {"data/prepared", "models/model.onnx", "bentos/mnist_classifier.bento"} <= set(outputs)
    for out in outputs:
        path = repo / out
        if path.suffix:  # a file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"output")
        else:  # a folder of outputs
            (path / "sub").mkdir(parents=True)
            (path / "sub" / "part.npz").write_bytes(b"output")
    (repo / "plots" / "notes.txt").write_text("mine")  # untracked, not an output: stays

    subprocess.run(["make", "clean"], cwd=repo, check=True, capture_output=True)

    assert [out for out in outputs if (repo / out).exists()] == []
    for name in tracked:
        assert (repo / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert (repo / "plots" / "notes.txt").read_text() == "mine"
    assert git("status", "--porcelain", cwd=repo).split() == ["??", "plots/notes.txt"]
