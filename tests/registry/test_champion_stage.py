"""The champion stage materialises what the registry's alias names, as a person moves it, and
fails in one line when there is nothing it may serve."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mnist_mlops.data.splits import load_splits
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.serving_choice import ServingChoice, resolve_artifact
from mnist_mlops.registry.deployment import (
    SMOKE_NAME,
    read_smoke,
    smoke_set,
    write_smoke,
)
from support.registry import register_version, run_artifact, tiny_export
from support.stages import run_stage_cli

pytestmark = pytest.mark.slow

MODEL = "mnist-mlp"


@pytest.fixture
def registry(tmp_path, params_writer, monkeypatch) -> tuple[str, Path]:
    """An empty sqlite registry in ``tmp_path`` and params.yaml naming it."""
    from mnist_mlops.tracking.runs import prepare_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepare_store(uri, "registry-tests")
    params = params_writer(tmp_path / "params.yaml", mlflow={"tracking_uri": uri})
    return uri, params


def champion_stage(folder: Path, params: Path, processed: Path):
    return run_stage_cli(
        "champion", str(folder), "--processed", str(processed), "--params", str(params)
    )


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_folder_follows_the_alias_not_the_newest_version(registry, processed_dir, tmp_path):
    uri, params = registry
    first, second = tiny_export(tmp_path / "v1", seed=1), tiny_export(tmp_path / "v2", seed=2)
    register_version(uri, MODEL, first, served="int8", alias="champion")
    refusal = "worse than champion v1 beyond noise on field_photo 0.5000 vs 0.9000"
    register_version(uri, MODEL, second, gate_reason=refusal)  # the gate said no
    folder = tmp_path / "models" / "champion"

    proc = champion_stage(folder, params, processed_dir)

    assert proc.returncode == 0, proc.stderr[-3000:]
    int8 = ModelCard.read_beside(first.with_name("model.int8.onnx"))
    assert proc.stdout.splitlines() == [
        f"serving {MODEL} v1 (int8, {int8.version}) from models:/{MODEL}@champion: "
        f"no champion yet; newer v2 is refused: {refusal}"
    ]
    choice = ServingChoice.read(folder / "served.json")
    assert (choice.version, choice.precision) == ("1", "int8")
    assert ModelCard.read_beside(resolve_artifact(folder / "served.json")).sha256 == int8.sha256
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.int8.json",
        "model.int8.onnx",
        "served.json",
        SMOKE_NAME,
    ]
    x, y = read_smoke(folder / SMOKE_NAME)
    splits, _ = load_splits(processed_dir)
    expected_x, expected_y = smoke_set(splits.x_test, splits.y_test)
    assert np.array_equal(x, expected_x) and np.array_equal(y, expected_y)
    assert set(y.tolist()) == set(range(10)) and x.dtype == np.uint8
    before = digest(folder)

    # Nothing moved: the same bytes, so DVC does not package again.
    assert champion_stage(folder, params, processed_dir).returncode == 0
    assert digest(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["champion"]  # no staging left

    # A person promotes v2 (what `pipeline.registry promote 2` does to the alias).
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(MODEL, "champion", "2")
    proc = champion_stage(folder, params, processed_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    float32 = ModelCard.read_beside(second)
    assert proc.stdout.startswith(f"serving {MODEL} v2 (float32, {float32.version}) from ")
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.json",
        "model.onnx",
        "served.json",
        SMOKE_NAME,
    ]
    assert ServingChoice.read(folder / "served.json").version == "2"
    assert digest(folder)[SMOKE_NAME] == before[SMOKE_NAME]


def test_no_champion_yet_is_one_line_and_leaves_no_folder(registry, processed_dir, tmp_path):
    uri, params = registry
    register_version(uri, MODEL, tiny_export(tmp_path / "v1"))  # registered, never promoted
    folder = tmp_path / "champion"

    proc = champion_stage(folder, params, processed_dir)

    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: models:/{MODEL}@champion: no version is 'champion' in {uri} yet; run "
        "`dvc repro` (the field stage's gate sets it) or "
        "`python -m pipeline.registry promote VERSION`"
    ]
    assert not folder.exists()


def test_a_hash_mismatch_is_one_line_and_keeps_the_old_folder(registry, processed_dir, tmp_path):
    uri, params = registry
    register_version(uri, MODEL, tiny_export(tmp_path / "v1", seed=1), alias="champion")
    folder = tmp_path / "champion"
    assert champion_stage(folder, params, processed_dir).returncode == 0
    before = digest(folder)
    register_version(uri, MODEL, tiny_export(tmp_path / "v2", seed=2), served="int8")
    stored = run_artifact(uri, MODEL, "2", "export/int8/model.int8.onnx")
    stored.write_bytes(stored.read_bytes() + b"\0")  # the store's file is not what was gated
    mlflow.MlflowClient(tracking_uri=uri).set_registered_model_alias(MODEL, "champion", "2")

    proc = champion_stage(folder, params, processed_dir)

    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: {MODEL} v2: hash mismatch: the downloaded model.int8.onnx")
    assert "python -m pipeline.registry promote VERSION" in line
    assert digest(folder) == before  # the previous champion stays deployed
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


def test_the_smoke_set_is_the_same_bytes_every_time(tmp_path):
    x = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    y = np.array([1, 2, 3])
    write_smoke(tmp_path / "a.npz", x, y)
    write_smoke(tmp_path / "b.npz", x, y)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back_x, back_y = read_smoke(tmp_path / "a.npz")
    assert np.array_equal(back_x, x) and back_y.dtype == np.int64 and back_y.tolist() == [1, 2, 3]


def test_an_unreachable_registry_is_one_line(processed_dir, params_writer, tmp_path, monkeypatch):
    import socket

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    params = params_writer(tmp_path / "params.yaml", mlflow={"tracking_uri": uri})

    proc = champion_stage(tmp_path / "champion", params, processed_dir)

    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()  # no retry warnings, no traceback
    assert line.startswith(f"error: the registry {uri} did not answer ([Errno "), line
    assert line.endswith("serve a file with MNIST_MODEL_PATH"), line
