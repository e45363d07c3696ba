"""Fixtures that tests in more than one folder use; each is built once and shared.

The code behind them is in the ``support`` package (tests/support/), which test modules
may import too; a fixture only one folder uses lives in that folder's conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mnist_mlops.core.config import load_params
from support import ROOT
from support.digits import draw_digit, encode
from support.http_mirror import HttpMirror
from support.http_mirror import http_mirror as serve_mirror
from support.mlflow_server import MlflowServer
from support.mlflow_server import mlflow_server as run_mlflow_server
from support.serving_image import build_image, gated_models
from support.stages import run_stage_cli, write_params
from support.synthetic import write_mirror
from support.tracked_run import TrainedRun, check_complete_run, train_tracked
from support.trained_model import train_real_model, usable

# ---- synthetic data and the repo's params ---------------------------------------------------


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


@pytest.fixture(scope="session")
def stage_cli() -> Callable[..., Any]:
    """Runs one stage's CLI in a subprocess: ``stage_cli("split", raw, out, cwd=tmp)``."""
    return run_stage_cli


@pytest.fixture(scope="session")
def params_writer(repo_params) -> Callable[..., Path]:
    """Writes the repo's params.yaml with changes: ``params_writer(path, train={"lr": 0.1})``."""
    return lambda path, **updates: write_params(path, repo_params, **updates)


@pytest.fixture
def http_mirror() -> Iterator[HttpMirror]:
    """An HTTP mirror on a free loopback port, shut down (stalls released) after the test."""
    with serve_mirror() as mirror:
        yield mirror


# ---- what every test's services and runs write stays in temporary folders ------------------


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


# ---- tracking: a real server, one tracked run, and what a run must carry -------------------


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on a real PostgreSQL, started by scripts/mlflow_server.sh
    (what ``make mlflow-server`` runs) on free loopback ports, stopped afterwards."""
    with run_mlflow_server() as server:
        yield server


@pytest.fixture
def complete_run_check() -> Callable[..., None]:
    """``check(client, run_id, epochs, curve=None)``: what every tracked run must carry."""
    return check_complete_run


@pytest.fixture(scope="session")
def tracked_run(processed_dir, tmp_path_factory, repo_params) -> TrainedRun:
    """One real training run (SMALL_TRAIN) with MLflow tracking, shared by every test that
    reads a finished run."""
    return train_tracked(processed_dir, tmp_path_factory.mktemp("tracked_run"), repo_params)


# ---- a real trained model, for the browser, drift, container and model-behaviour tests -----


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the real pipeline on real MNIST (model.json beside it).

    $MNIST_TRAINED_MODEL or the repo's own models/model.onnx (after `dvc repro`) is
    used when it is there and vouched for; otherwise the pipeline is run once per
    test session (the slowest fixture here), as CI does in a clean clone.
    """
    for candidate in (os.environ.get("MNIST_TRAINED_MODEL"), ROOT / "models" / "model.onnx"):
        if candidate and usable(Path(candidate)):
            return Path(candidate)
    return train_real_model(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def champion_folder(tmp_path_factory: pytest.TempPathFactory, trained_model: Path) -> Path:
    """models/champion/ as the champion stage leaves it, for the trained model
    (:func:`support.serving_image.gated_models`)."""
    return gated_models(trained_model, tmp_path_factory.mktemp("champion"))


@pytest.fixture(scope="session")
def serving_image(tmp_path_factory: pytest.TempPathFactory, champion_folder: Path) -> str:
    """The Dockerfile built with podman, the champion folder baked in; its tag."""
    return build_image(champion_folder, tmp_path_factory.mktemp("context"))


# ---- drawn digits, for the imaging and serving tests ----------------------------------------


@pytest.fixture(scope="session")
def digit_png() -> bytes:
    """A black-on-white "7", off-centre on a 300x200 canvas, as PNG bytes."""
    return encode(draw_digit())


@pytest.fixture(scope="session")
def make_digit() -> Callable[..., Image.Image]:
    """:func:`support.digits.draw_digit`."""
    return draw_digit


@pytest.fixture(scope="session")
def encode_image() -> Callable[..., bytes]:
    """:func:`support.digits.encode`."""
    return encode
