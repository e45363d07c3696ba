"""Shared fixtures: small synthetic MNIST-format data that tests generate.

Each synthetic class is a bright 7x7 block at its own place on a 28x28 canvas
plus noise, so a small MLP can learn it in one or two epochs on CPU; the IDX
bytes have the real magic numbers, so every reader path is exercised.
Also a real MLflow tracking server on PostgreSQL, for the tracking and queue tests.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_mlops.data.idx import encode_idx

ROOT = Path(__file__).resolve().parents[1]
FILE_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, 28, 28) and labels; class k lights a block at a k-specific place."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + (k // 4) * 8, 2 + (k % 4) * 6
        images[i, r : r + 7, c : c + 7] = rng.integers(180, 256, size=(7, 7))
    return images, labels


def write_mirror(
    folder: Path, n_train: int = 400, n_test: int = 200, seed: int = 0
) -> dict[str, str]:
    """Write gzip IDX files into ``folder``; return name -> SHA-256 of the decompressed bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = synthetic_digits(n_train, seed)
    x_te, y_te = synthetic_digits(n_test, seed + 1)
    sha = {}
    for name, array in zip(FILE_NAMES, (x_tr, y_tr, x_te, y_te)):
        raw = encode_idx(array)
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        sha[name] = hashlib.sha256(raw).hexdigest()
    return sha


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A local mirror folder of synthetic MNIST and its checksums."""
    folder = tmp_path_factory.mktemp("mirror")
    return folder, write_mirror(folder)


@pytest.fixture(scope="session")
def processed_dir(tmp_path_factory: pytest.TempPathFactory, synthetic_mirror) -> Path:
    """Synthetic data taken through download + normalise, as the train stage sees it."""
    from mnist_mlops.data.fetch import download_mnist
    from mnist_mlops.data.normalise import make_splits, save_splits

    folder, sha = synthetic_mirror
    raw = tmp_path_factory.mktemp("raw")
    download_mnist(raw, sha, [str(folder)])
    out = tmp_path_factory.mktemp("processed")
    splits, stats = make_splits(raw, val_size=100, seed=0)
    save_splits(splits, stats, out)
    return out


@pytest.fixture(autouse=True)
def _tracking_uri_stays_put() -> Iterator[None]:
    """Undo a test's ``$MLFLOW_TRACKING_URI``: MLflow 3's ``set_tracking_uri`` (which
    Lightning's MLFlowLogger calls) also sets it, and the pipeline's stages obey it, so
    a leaked value would send a later test's subprocesses to this test's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its tracking URI and the PostgreSQL database behind it."""

    uri: str
    database: str  # postgresql:// URI of the backend store, for checking rows directly
    folder: Path  # MLFLOW_SERVER_DIR: pgdata/, artifacts/, server.log


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on a real PostgreSQL, started by scripts/mlflow_server.sh
    (what ``make mlflow-server`` runs) on free loopback ports, stopped afterwards."""
    import httpx
    from bento_process import free_port

    # As root, PostgreSQL runs as the postgres user: the folder must be reachable by it.
    folder = Path(tempfile.mkdtemp(prefix="mnist-mlflow-server-"))
    folder.chmod(0o755)
    port, pgport = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_SERVER_DIR": str(folder),
        "MLFLOW_PORT": str(port),
        "PGPORT": str(pgport),
    }
    env.pop("MLFLOW_BACKEND_STORE_URI", None)
    with open(folder / "server.log", "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "mlflow_server.sh")],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            text = (folder / "server.log").read_text(errors="replace")[-4000:]
            if proc.poll() is not None:
                pytest.fail(f"mlflow_server.sh exited with {proc.returncode}:\n{text}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 180 s:\n{text}")
            time.sleep(0.5)
        yield MlflowServer(uri, f"postgresql://mlflow@127.0.0.1:{pgport}/mlflow", folder)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the script's trap stops PostgreSQL
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        pid_file = folder / "pgdata" / "postmaster.pid"
        if pid_file.exists():  # the script was killed before its trap ran
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
            time.sleep(2)
        shutil.rmtree(folder, ignore_errors=True)


# The per-epoch metrics every run logs (training.HISTORY_KEYS, spelled out to test it).
HISTORY_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")


def check_complete_run(
    client: Any, run_id: str, epochs: int, curve: list[dict] | None = None
) -> None:
    """Params once each, per-epoch histories (equal to ``curve`` when given), dataset
    inputs with digests, system metrics: what every tracked training run must carry."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED", run.info
    params = run.data.params
    assert params["max_epochs"] == str(epochs) and "dropout" in params
    # Each parameter once, under its flat name (no Lightning "cfg/..." copies).
    assert not [k for k in params if "/" in k], sorted(params)
    for key in HISTORY_KEYS:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert len(history) == epochs, (key, len(history))
        if curve is not None:
            assert [m.value for m in history] == pytest.approx([r[key] for r in curve]), key
    assert run.data.metrics["train/seconds"] > 0
    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"train", "val"}, inputs
    assert all(len(d.digest) >= 8 and d.source_type == "local" for d in inputs.values())
    assert inputs["train"].digest != inputs["val"].digest
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system


@pytest.fixture
def complete_run_check():
    """``check(client, run_id, epochs, curve=None)``: the assertions above, as a fixture."""
    return check_complete_run
