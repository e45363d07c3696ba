"""Shared fixtures: small synthetic MNIST-format data, the repo's params, a loopback mirror.

Each synthetic class is a bright 7x7 block at its own place on a 28x28 canvas
plus noise, so a small MLP can learn it in one or two epochs on CPU; the IDX
bytes have the real magic numbers, so every reader path is exercised.
Also a real MLflow tracking server on PostgreSQL, for the tracking and queue tests.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mnist_mlops.core.config import load_params
from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fetch import MIRROR_ENV
from mnist_mlops.data.idx import encode_idx
from mnist_mlops.data.splits import RAW_FILES

ROOT = Path(__file__).resolve().parents[1]


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
    names = (*RAW_FILES["train"], *RAW_FILES["test"])
    for name, array in zip(names, (x_tr, y_tr, x_te, y_te), strict=True):
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
    """Synthetic data taken through download + split, as the train stage sees it."""
    from mnist_mlops.data.fetch import download_mnist
    from mnist_mlops.data.splits import make_splits, save_splits

    folder, sha = synthetic_mirror
    raw = tmp_path_factory.mktemp("raw")
    download_mnist(raw, sha, [str(folder)], timeout_s=5, retries=0)
    out = tmp_path_factory.mktemp("processed")
    splits, stats = make_splits(raw, val_size=100, seed=0)
    save_splits(splits, stats, out)
    return out


@pytest.fixture(scope="session")
def repo_params() -> dict[str, Any]:
    """The repository's params.yaml: tests build configs from it (``Cls.from_params``)
    with their overrides, so no test carries a second copy of a default."""
    return load_params(ROOT / "params.yaml")


def write_params(path: Path, params: dict[str, Any], **updates: dict[str, Any]) -> Path:
    """Write ``params`` with some keys of some sections changed (``split={"val_size": 100}``)."""
    merged = {name: {**values, **updates.get(name, {})} for name, values in params.items()}
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


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


@pytest.fixture(scope="session")
def stage_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Runs one stage's CLI in a subprocess: ``stage_cli("split", raw, out, cwd=tmp)``."""
    return run_stage_cli


@pytest.fixture(scope="session")
def params_writer(repo_params) -> Callable[..., Path]:
    """Writes the repo's params.yaml with changes: ``params_writer(path, train={"lr": 0.1})``."""
    return lambda path, **updates: write_params(path, repo_params, **updates)


Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Runs the behaviour registered for the request path; 404 otherwise."""

    routes: dict[str, Behaviour]
    release: threading.Event

    def do_GET(self) -> None:  # noqa: N802
        behaviour = self.routes.get(self.path)
        if behaviour is None:
            self.send_error(404)
            return
        # The client giving up on a slow or lying mirror is the point of many tests.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            behaviour(self)

    def log_message(self, *args: object) -> None:
        pass


class HttpMirror:
    """A real HTTP mirror on loopback whose files the test defines, one path at a time."""

    def __init__(self, url: str, routes: dict[str, Behaviour], release: threading.Event) -> None:
        self.url = url  # base URL, as in download.mirrors: file names are appended
        self.routes = routes
        self.release = release  # set at teardown: ends any response still stalling

    def route(self, name: str, behaviour: Behaviour) -> None:
        """Answer requests for ``name`` with ``behaviour(handler)``."""
        self.routes[f"/mnist/{name}"] = behaviour

    def respond(self, name: str, status: int, body: bytes) -> None:
        """Answer requests for ``name`` with ``status`` and ``body``."""

        def send(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.send_response(status)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.route(name, send)


@pytest.fixture
def http_mirror() -> Iterator[HttpMirror]:
    """An HTTP mirror on a free loopback port, shut down (stalls released) after the test."""
    release = threading.Event()
    routes: dict[str, Behaviour] = {}
    handler = type("Handler", (_MirrorHandler,), {"routes": routes, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield HttpMirror(f"http://127.0.0.1:{server.server_address[1]}/mnist/", routes, release)
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session", autouse=True)
def _monitoring_stays_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point every service a test starts (in process or served) at a temporary inference
    log and corrections store, never at the defaults under the checkout's monitoring/.
    Tests that check the log pass their own folder (bento_process's ``env_extra``)."""
    folder = tmp_path_factory.mktemp("monitoring")
    names = {"MNIST_INFERENCE_LOG_DIR": str(folder / "inference"),
             "MNIST_FEEDBACK_DB": f"sqlite:///{folder / 'feedback.sqlite'}"}  # fmt: skip
    before = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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


SERVER_HANG_S = 600


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
        # A hang guard: the wait ends as soon as the server answers or the script exits.
        deadline = time.monotonic() + SERVER_HANG_S
        while True:
            text = (folder / "server.log").read_text(errors="replace")[-4000:]
            if proc.poll() is not None:
                pytest.fail(f"mlflow_server.sh exited with {proc.returncode}:\n{text}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {SERVER_HANG_S} s:\n{text}")
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
                postmaster = int(pid_file.read_text().split()[0])
                os.kill(postmaster, signal.SIGINT)  # fast shutdown
                _wait_gone(postmaster, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_gone(pid: int, timeout: float) -> None:
    """Until process ``pid`` has exited (it is not our child: no wait() for it)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(pid).wait(timeout)


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


# ---- one tracked training run on the synthetic data, for the training and tracking tests ---

# Small and on CPU; the rest (optimizer, schedule, seed, deterministic...) is params.yaml's.
SMALL_TRAIN = dict(
    hidden=(32,), max_epochs=3, batch_size=32, lr=3e-3, accelerator="cpu", devices="1"
)


@dataclass(frozen=True)
class TrainedRun:
    """``train`` run once, tracked in a sqlite MLflow store, and what it predicted."""

    result: Any  # the TrainResult
    config: Any  # the TrainConfig it ran with (SMALL_TRAIN over params.yaml)
    folder: Path  # model.ckpt, and mlflow.db with its mlruns/ artifacts
    tracking_uri: str
    test_logits: dict[int, Any]  # epoch (from 0) -> the net's logits on the test split then


@pytest.fixture(scope="session")
def tracked_run(processed_dir, tmp_path_factory, repo_params) -> TrainedRun:
    """One real training run (SMALL_TRAIN) with MLflow tracking, shared by every test that
    reads a finished run; system metrics are sampled often so even this short run has some."""
    import torch
    from pytorch_lightning.callbacks import Callback

    from mnist_mlops.core.config import MlflowConfig, TrainConfig
    from mnist_mlops.data.splits import load_splits
    from mnist_mlops.tracking.runs import prepare_store
    from mnist_mlops.train.training import train

    class TestSetLogits(Callback):
        """The net's test-split logits (eval mode) at each epoch's end: ModelCheckpoint
        saves after this hook and before the next optimizer step, so these are the
        predictions of the weights that epoch's checkpoint holds."""

        def __init__(self, images: np.ndarray) -> None:
            self.images = torch.from_numpy(images)
            self.by_epoch: dict[int, torch.Tensor] = {}

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            net, was_training = pl_module.net, pl_module.net.training
            net.eval()
            with torch.no_grad():
                self.by_epoch[trainer.current_epoch] = net(self.images).clone()
            net.train(was_training)

    folder = tmp_path_factory.mktemp("tracked_run")
    uri = f"sqlite:///{folder}/mlflow.db"
    cfg = TrainConfig.from_params(repo_params, **SMALL_TRAIN)
    logits = TestSetLogits(load_splits(processed_dir)[0].x_test)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        # Lightning's logger sets $MLFLOW_TRACKING_URI; setting it here first makes the
        # context undo it, so later tests' subprocesses do not find this run's store.
        env.setenv("MLFLOW_TRACKING_URI", uri)
        prepare_store(uri, "tracked")
        result = train(
            cfg,
            processed_dir,
            folder / "model.ckpt",
            MlflowConfig.from_params(repo_params, tracking_uri=uri, experiment="tracked"),
            callbacks=[logits],
        )
    return TrainedRun(result, cfg, folder, uri, logits.by_epoch)


# ---- a real trained model, for the browser and model-behaviour tests -----------------------


def _usable(onnx: Path) -> bool:
    """A model.onnx whose model card (beside it) vouches for it: same SHA-256."""
    from mnist_mlops.inference.model_card import ModelCard

    try:
        ModelCard.read_beside(onnx).verify(onnx)
    except (UserError, OSError, ValueError):  # missing, malformed or mismatched: train one
        return False
    return True


# The behaviour and browser tests need a model that reads digits as the default one does,
# not its last fraction of a percent: the repo's params, with fewer epochs than its 12.
TRAINED_MODEL_EPOCHS = 3


def train_real_model(folder: Path) -> Path:
    """Run the real pipeline's stages (download .. export) on real MNIST into ``folder``.

    The data comes from $MNIST_MIRROR, else ../shared/mnist beside the repo, else the
    public mirrors in params.yaml; the params are the repo's own (the default model)
    but for ``TRAINED_MODEL_EPOCHS``.
    """
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    shared = ROOT.parent / "shared" / "mnist"
    mirror = os.environ.get(MIRROR_ENV) or (str(shared) if shared.is_dir() else "")
    params["download"]["mirror"] = mirror
    params["train"].update(accelerator="cpu", devices="1", max_epochs=TRAINED_MODEL_EPOCHS)
    params["mlflow"]["tracking_uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    m = str(folder / "metrics")
    for stage in (
        ["download", "raw"],
        ["split", "raw", "processed"],
        ["prepare", "processed", "prepared"],
        ["train", "processed", "models/model.ckpt", "--prepared", "prepared",
         "--metrics", f"{m}/train.json", "--curve", f"{m}/curve.csv"],
        ["evaluate", "models/model.ckpt", "processed", "--metrics-dir", m, "--plots-dir", m],
        ["export", "models/model.ckpt", "processed", "models/model.onnx",
         "--metrics", f"{m}/export.json", "--eval-metrics", f"{m}/evaluate.json"],
    ):  # fmt: skip
        proc = run_stage_cli(*stage, cwd=folder, timeout=STAGE_HANG_S)
        assert proc.returncode == 0, f"pipeline.{stage[0]} failed:\n{proc.stderr[-3000:]}"
    return folder / "models" / "model.onnx"


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the real pipeline on real MNIST (model.json beside it).

    $MNIST_TRAINED_MODEL or the repo's own models/model.onnx (after `dvc repro`) is
    used when it is there and vouched for; otherwise the pipeline is run once per
    test session (a few minutes on two CPU cores), as CI does in a clean clone.
    """
    for candidate in (os.environ.get("MNIST_TRAINED_MODEL"), ROOT / "models" / "model.onnx"):
        if candidate and _usable(Path(candidate)):
            return Path(candidate)
    return train_real_model(tmp_path_factory.mktemp("trained"))
