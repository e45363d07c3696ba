"""The serving image, built with podman from the Dockerfile, and containers of it.

scripts/podman_image.sh builds the Dockerfile on a Debian base it makes with mmdebstrap
(cached between runs, as are the image's layers), with a model trained by the real
pipeline baked in as the champion stage leaves it (models/champion). The container test,
the replica tests and the ``podman kube play`` test all run this one image; it is built
once per session (tests/conftest.py ``serving_image``). Needs podman, runc and mmdebstrap
as root (scripts/install_system_packages.sh installs them).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from mnist_mlops.inference.serving_choice import CHOICE_NAME
from support import ROOT
from support.deployment import deployment_folder
from support.gated import gated_export
from support.tools import need

SCRIPT = ROOT / "scripts" / "podman_image.sh"
TAG = "localhost/mnist-mlops:test"  # fixed, so a rebuild reuses the cached layers
DEPLOYED = "models/champion"  # what the Dockerfile copies: the champion stage's folder
BUILD_HANG_S = 1200  # a cold build (base image, pip install of the lock) takes minutes


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined, comments
    dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """``podman ARGS`` with the flags scripts/podman_image.sh uses on this host."""
    proc = subprocess.run(
        ["bash", str(SCRIPT), "podman", *args], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, f"podman {shlex.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def gated_models(trained_model: Path, scratch: Path) -> Path:
    """models/champion/ as the champion stage leaves it: the repo's own after `dvc repro`
    when the trained model is the repo's, else one made in ``scratch`` from the trained
    model's folder as the gate leaves it (its own served.json, else a copy with the int8
    artifact chosen) and the test digits of the data it was trained on."""
    if trained_model.parent == ROOT / "models" and (ROOT / DEPLOYED / CHOICE_NAME).is_file():
        return ROOT / DEPLOYED
    choice = trained_model.parent / CHOICE_NAME
    if not choice.is_file():
        choice = gated_export(trained_model, scratch / "gated")
    home = trained_model.parent.parent  # the repo, or train_real_model's folder
    processed = next(
        (p for p in (home / "data" / "processed", home / "processed") if p.is_dir()), None
    )
    if processed is None:
        pytest.fail(f"no split stage output beside {trained_model} for the smoke set")
    return deployment_folder(choice, scratch / "deployed" / DEPLOYED, processed).parent


def build_image(models: Path, context: Path) -> str:
    """The Dockerfile built by scripts/podman_image.sh from ``context``, filled with what
    its COPY lines name (the models/ files from ``models``); returns the image's tag."""
    need("podman", "runc", "mmdebstrap")
    shutil.copy(ROOT / ".dockerignore", context)
    for kind, args in instructions():
        if kind != "COPY":
            continue
        *sources, _ = shlex.split(args)
        for src in sources:
            origin = ROOT / src
            if src.startswith(DEPLOYED):  # a clean checkout has no model: the trained one
                origin = models / Path(src).relative_to(DEPLOYED)
            target = context / src
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
                shutil.copytree(origin, target, dirs_exist_ok=True, ignore=ignore)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target)
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SCRIPT), "build", TAG, str(context)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_HANG_S,
    )
    assert proc.returncode == 0, f"build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    size = int(podman("image", "inspect", "--format", "{{.Size}}", TAG).stdout)
    print(f"\nimage {TAG}: built in {time.monotonic() - started:.0f} s, {size / 1e6:.0f} MB")
    return TAG


class Container:
    """A started container of the image, serving on ``port`` (host network)."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.url = name, f"http://127.0.0.1:{port}"

    def state(self) -> dict:
        out = podman("inspect", "--format", "{{json .State}}", self.name).stdout
        return json.loads(out)

    def logs(self) -> str:
        proc = podman("logs", self.name, check=False)
        return (proc.stdout + proc.stderr)[-4000:]

    def exec(self, *cmd: str) -> str:
        return podman("exec", self.name, *cmd).stdout

    def wait_ready(self, hang_s: float = 180) -> None:
        """Until ``/readyz`` answers 200; fails the test if the container exits first."""
        deadline = time.monotonic() + hang_s
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not self.state()["Running"]:
                pytest.fail(f"container {self.name} exited before it was ready:\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"container {self.name} not ready after {hang_s} s:\n{self.logs()}")
            time.sleep(0.5)
