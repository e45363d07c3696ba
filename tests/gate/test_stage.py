"""The field stage judges what will be served: both artifacts of an export scored on the
same images, the int8 one served only when it loses on no set beyond noise, the registered
version tagged with what it serves and with the champion gate's word, served.json written
last and resolvable, and a champion that served int8 rescored through its int8 file.

The models are small ONNX graphs that read the synthetic digits (tests/support/synthetic.py:
each class a bright block at its own place) by summing each class's block: float32 reads
the test split perfectly; quantized by ONNX Runtime it reads it as well; with its classes
shifted by one ("damaged") it reads none right. The field sets, centred by the serving
preprocessing, sit near chance for all of them, which the gate's noise tolerance allows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mnist_mlops.core.config import FieldConfig
from mnist_mlops.core.fileio import write_json
from mnist_mlops.export.register import register_onnx
from mnist_mlops.gate.stage import FieldOutcome, FieldStagePaths, run_field_stage
from mnist_mlops.inference.model_card import ModelCard, card_path
from mnist_mlops.inference.serving_choice import ServingChoice, resolve_artifact
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME
from mnist_mlops.registry.aliases import CHAMPION

pytestmark = pytest.mark.slow

FIELD = {"sets": ["photo", "fonts"], "n_per_set": 10, "seed": 3, "gate_z": 2.0}
INT8_PATH = "export/int8/model.int8.onnx"  # where the export stage logs the int8 file


def block_model(path: Path, shift: int = 0) -> Path:
    """pixels (N, 28, 28) -> logits (N, 10): each class's block summed (classes rolled by
    ``shift``, so a non-zero shift reads every synthetic digit wrong)."""
    weights = np.zeros((28, 28, 10), dtype=np.float32)
    for k in range(10):
        r, c = 2 + (k // 4) * 8, 2 + (k % 4) * 6
        weights[r : r + 7, c : c + 7, (k + shift) % 10] = 1.0 / 49
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", [INPUT_NAME, "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "blocks"], [OUTPUT_NAME]),
        ],
        "blocks",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 28, 28])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 10])],
        [
            numpy_helper.from_array(np.array([-1, 784], np.int64), "flat_shape"),
            numpy_helper.from_array(weights.reshape(784, 10), "blocks"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def quantized(path: Path, shift: int = 0) -> Path:
    """``block_model`` quantized to int8 by ONNX Runtime, with an int8 card beside it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = block_model(path.with_name("float-source.onnx"), shift)
    quantize_dynamic(source, path, weight_type=QuantType.QInt8)
    source.unlink()
    card = ModelCard.for_model(
        path, mean=0.0, std=1.0, precision="int8", quantization={"method": "dynamic"}
    )
    card.write_beside(path)
    return path


@dataclass
class Store:
    uri: str
    client: mlflow.MlflowClient
    experiment: str


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    """One sqlite MLflow store for the module, each test under its own registered model."""
    folder = tmp_path_factory.mktemp("gate-store")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("gate", (folder / "mlruns").as_uri())
    yield Store(uri, client, experiment)


@pytest.fixture
def name(request) -> str:
    return f"digits-{request.node.name}"


@dataclass
class Export:
    """What the export stage leaves behind: models/ with the artifacts and run.json, and a
    registered version of the float model (tagged with the int8 file's place in the run)."""

    models: Path
    version: str
    run_id: str

    @property
    def onnx(self) -> Path:
        return self.models / "model.onnx"

    @property
    def int8(self) -> Path:
        return self.models / "model.int8.onnx"


def export(store: Store, folder: Path, name: str, shift: int = 0, int8: int | None = 0) -> Export:
    """A float model (classes rolled by ``shift``) and, unless ``int8`` is None, an int8
    one (rolled by ``int8``), registered and logged as the export stage does."""
    models = folder / "models"
    onnx_path = block_model(models / "model.onnx", shift)
    card = ModelCard.for_model(onnx_path, mean=0.0, std=1.0)
    card_file = card.write_beside(onnx_path)
    run = store.client.create_run(store.experiment).info.run_id
    store.client.log_artifact(run, str(card_file), "export")
    ref = {"run_id": run, "experiment_id": store.experiment, "tracking_uri": store.uri}
    write_json(models / "run.json", ref)
    version = register_onnx(onnx_path, store.uri, run, name, 1.0).version
    if int8 is not None:
        path = quantized(models / "model.int8.onnx", int8)
        for logged in (path, card_path(path)):
            store.client.log_artifact(run, str(logged), "export/int8")
        store.client.set_model_version_tag(name, version, "int8_artifact", INT8_PATH)
    return Export(models, version, run)


def stage_paths(exp: Export, processed_dir: Path, int8: Path | None) -> FieldStagePaths:
    work = exp.models.parent
    return FieldStagePaths(
        onnx=exp.onnx,
        processed_dir=processed_dir,
        corrections=None,
        int8=int8,
        plots_dir=work / "plots",
        field_inputs=work / "field_inputs.npz",
    )


def run_gate(exp: Export, processed_dir: Path, repo_params, name: str, **kw: Any) -> FieldOutcome:
    paths = stage_paths(exp, processed_dir, kw.get("int8", exp.int8))
    return run_field_stage(paths, FieldConfig.from_params(repo_params, **FIELD), name)


def tags(store: Store, name: str, version: str) -> dict[str, str]:
    return dict(store.client.get_model_version(name, version).tags)


def test_int8_within_noise_is_served_written_last_and_tagged(
    store, name, tmp_path, processed_dir, params_writer, stage_cli
):
    """The stage's CLI: the int8 model reads as well as float32, so it serves."""
    exp = export(store, tmp_path, name)
    params = params_writer(tmp_path / "params.yaml", field=FIELD, mlflow={"registered_model": name})
    proc = stage_cli(
        "field", "models/model.onnx", str(processed_dir), "--int8", "models/model.int8.onnx",
        "--params", str(params), "--metrics", "metrics/field.json", "--plots-dir", "plots",
        "--field-inputs", "field_inputs.npz", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    field = json.loads((tmp_path / "metrics/field.json").read_text())
    assert set(field["sets"]) == set(FIELD["sets"])
    assert set(field["artifacts"]) == {"float32", "int8"}
    for accuracies in field["artifacts"].values():
        assert set(accuracies) == {*FIELD["sets"], "test"}
        assert accuracies["test"] == 1.0
    assert field["served"]["artifact"] == "model.int8.onnx"
    assert field["served"]["precision"] == "int8" and "within noise" in field["served"]["reason"]
    assert {k: s["accuracy"] for k, s in field["sets"].items()} == {
        k: field["artifacts"]["int8"][k] for k in FIELD["sets"]
    }
    assert field["champion"]["promoted"] and field["champion"]["reason"] == "no champion yet"

    served = exp.models / "served.json"
    assert resolve_artifact(served) == exp.int8
    choice = ServingChoice.read(served)
    assert choice.version == exp.version and choice.precision == "int8"
    assert served.stat().st_mtime_ns >= (tmp_path / "metrics/field.json").stat().st_mtime_ns
    int8_card = ModelCard.read_beside(exp.int8)
    tagged = tags(store, name, exp.version)
    assert tagged["served_artifact"] == "model.int8.onnx"
    assert tagged["served_precision"] == "int8" and tagged["served_sha256"] == int8_card.sha256
    assert tagged["served_reason"] == choice.reason
    assert tagged["gate_decision"] == "promoted" and tagged["gate_reason"] == "no champion yet"
    assert tagged["test_accuracy"] == "1.000000"
    champion = store.client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == exp.version
    run = store.client.get_run(exp.run_id).data.metrics
    assert run["field/int8/acc_test"] == 1.0 and run["field/float32/acc_test"] == 1.0


def test_int8_that_loses_on_a_set_is_refused_and_float_serves(
    store, name, tmp_path, processed_dir, repo_params
):
    exp = export(store, tmp_path, name, int8=1)  # the int8 model reads every digit wrong
    outcome = run_gate(exp, processed_dir, repo_params, name)
    choice = outcome.choice
    assert (choice.artifact, choice.precision) == ("model.onnx", "float32")
    assert choice.sha256 == ModelCard.read_beside(exp.onnx).sha256
    assert "int8 refused" in choice.reason and "test 0.0000 vs 1.0000" in choice.reason
    assert outcome.summary["artifacts"]["int8"]["test"] == 0.0
    assert outcome.summary["served"]["precision"] == "float32"
    tagged = tags(store, name, exp.version)
    assert tagged["served_precision"] == "float32" and tagged["served_reason"] == choice.reason
    assert tagged["test_accuracy"] == "1.000000"  # the served float model's number


def test_a_missing_int8_artifact_serves_float(store, name, tmp_path, processed_dir, repo_params):
    exp = export(store, tmp_path, name, int8=None)  # an export from before quantization
    missing = run_gate(exp, processed_dir, repo_params, name)
    assert missing.choice.precision == "float32" and "not found" in missing.choice.reason
    assert set(missing.summary["artifacts"]) == {"float32"}
    none = run_gate(exp, processed_dir, repo_params, name, int8=None)
    assert none.choice.artifact == "model.onnx" and "no quantized" in none.choice.reason
    assert tags(store, name, exp.version)["served_precision"] == "float32"


def test_a_refused_version_carries_the_gates_word(
    store, name, tmp_path, processed_dir, repo_params
):
    good = export(store, tmp_path / "good", name)
    assert run_gate(good, processed_dir, repo_params, name).summary["champion"]["promoted"]
    bad = export(store, tmp_path / "bad", name, shift=1, int8=1)
    outcome = run_gate(bad, processed_dir, repo_params, name)
    gate = outcome.summary["champion"]
    assert not gate["promoted"] and "test_accuracy" in gate["worse_on"]
    tagged = tags(store, name, bad.version)
    assert tagged["gate_decision"] == "refused" and tagged["gate_reason"] == gate["reason"]
    assert (
        f"v{good.version}" in gate["reason"] and "test_accuracy 0.0000 vs 1.0000" in gate["reason"]
    )
    champion = store.client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == good.version
    assert outcome.choice.version == bad.version  # served.json still names what was judged


def test_a_champion_that_served_int8_is_rescored_through_its_int8_file(
    store, name, tmp_path, processed_dir, repo_params
):
    """The champion's float model reads every digit; its int8 file, the one it served,
    reads none: rescored on new sets, it must be judged by the int8 file."""
    old = export(store, tmp_path / "old", name, int8=1)
    int8_sha = ModelCard.read_beside(old.int8).sha256
    for key, value in {
        "served_precision": "int8",
        "served_sha256": int8_sha,
        "test_accuracy": "1.000000",
        "sets_sha256": "0" * 64,  # scored on other images: rescored before comparing
    }.items():
        store.client.set_model_version_tag(name, old.version, key, value)
    store.client.set_registered_model_alias(name, CHAMPION, old.version)

    new = export(store, tmp_path / "new", name)
    gate = run_gate(new, processed_dir, repo_params, name).summary["champion"]
    assert gate["rescored_previous"] and gate["previous"] == old.version
    assert gate["previous_metrics"]["test_accuracy"] == 0.0  # the int8 file's, not float's 1.0
    assert gate["promoted"]
    assert tags(store, name, old.version)["test_accuracy"] == "0.000000"
