"""The Dockerfile, tested as far as this machine allows (no Docker engine here).

The image's own install command runs in a fresh virtualenv (proving the serving
extra installs and pulls in no torch), and its CMD, with the image's ENV and the
files its COPY lines bring, serves a real prediction on a loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from bento_process import free_port, launch, stop_server, wait_ready

from mnist_mlops.inference.session import inference_session
from mnist_mlops.monitoring.logfiles import read_log
from mnist_mlops.monitoring.settings import ENV

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MONITORING_ENV = (ENV["log_dir"], ENV["feedback_uri"])


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_slim_non_root_and_health_checked():
    steps = _instructions()
    kinds = [k for k, _ in steps]
    assert steps[0][0] == "FROM" and "slim" in steps[0][1]
    user = [v for k, v in steps if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    health = next(v for k, v in steps if k == "HEALTHCHECK")
    assert "/readyz" in health
    installs = " ".join(v for k, v in steps if k == "RUN")
    assert "[serve]" in installs and "torch" not in installs


def _copy(sources: list[Path], dest: Path, into_dir: bool) -> None:
    """Docker's COPY: a folder's contents go into dest; a file goes into dest/ or to dest."""
    for src in sources:
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(src, dest, dirs_exist_ok=True, ignore=ignore)
        else:
            target = dest / src.name if into_dir else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory, model_path: Path) -> tuple[Path, dict[str, str], list[str]]:
    """A fresh venv with the image's install command, and /app laid out as COPY does."""
    tmp = tmp_path_factory.mktemp("image")
    # The image bakes in the pipeline's models/; a clean checkout has none, so the
    # COPY of models/ takes a real exported test model instead.
    model_dir = model_path.parent
    app, venv = tmp / "app", tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp)}
    app.mkdir()
    cmd: list[str] = []
    for kind, args in _instructions():
        if kind == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", args):
                env[key] = value.replace("/app", str(app)).replace("/home/app", str(tmp))
        elif kind == "COPY":
            *sources, dest = shlex.split(args)
            paths = [
                model_dir / Path(src).name if src.startswith("models/") else ROOT / src
                for src in sources
            ]
            _copy(paths, app / dest.lstrip("/"), dest.endswith("/"))
        elif kind == "RUN" and args.startswith("pip install"):  # not useradd: not on this host
            proc = subprocess.run(
                args,
                shell=True,
                cwd=app,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert proc.returncode == 0, (
                f"RUN {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        elif kind == "CMD":
            cmd = json.loads(args)
    return app, env, cmd


def test_image_install_pulls_in_no_torch(image_root):
    _, env, _ = image_root
    probe = (
        "import importlib.util as u; "
        "print(u.find_spec('torch'), u.find_spec('onnxruntime') is not None)"
    )
    out = subprocess.run(
        ["python", "-c", probe],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["None", "True"]


def test_image_entrypoint_serves_a_prediction(image_root):
    app, env, cmd = image_root
    assert cmd[:2] == ["bentoml", "serve"]
    port = free_port()
    cmd = list(cmd)
    cmd[cmd.index("--host") + 1] = "127.0.0.1"  # the image binds 0.0.0.0; tests stay on loopback
    cmd[cmd.index("--port") + 1] = str(port)
    # The image's own monitoring defaults (relative to /app), not the test session's.
    outside = {k: v for k, v in os.environ.items() if k not in MONITORING_ENV}
    served = launch(cmd, app, {**outside, **env}, app / "serve.log", port)
    try:
        wait_ready(served, timeout=90)
        one = [[255 if 5 <= r < 23 and 13 <= c < 16 else 0 for c in range(28)] for r in range(28)]
        reply = httpx.post(f"{served.url}/predict_array", json={"pixels": one}, timeout=10)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        pixels = np.asarray(one, dtype=np.float32)[None]
        offline = inference_session(app / "models/model.onnx").run(None, {"pixels": pixels})[0]
        assert body["digit"] == int(offline.argmax())
        assert abs(sum(body["probabilities"]) - 1) < 1e-5
        meta = json.loads((app / "models/model.json").read_text())
        assert body["model_version"] == meta["version"]
    finally:
        stop_server(served)  # the worker writes what it queued as it stops
    logged = [r["request_id"] for r in read_log(app / "monitoring" / "inference")]
    assert logged == [body["request_id"]]  # in the folder the image makes writable
