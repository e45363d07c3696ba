"""The export stage writes the int8 model beside the float one: its card written last and
vouching for it, its parity with float in metrics/export.json, the file logged to the
train stage's MLflow run and named in the registered version's tags, the float card logged
as the version's card; a rerun writes the same bytes, and from the same run is the same
registry version; a calibration the split cannot fill stops the CLI with one line."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_mlops.core.config import ExportConfig
from mnist_mlops.core.fileio import sha256_file, write_json
from mnist_mlops.export.stage import INT8_ARTIFACTS, ExportStagePaths, run_export_stage
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.registry.versions import served_card
from mnist_mlops.tracking.runs import client, prepare_store

pytestmark = pytest.mark.slow

NAME = "export-int8-test"


@dataclass(frozen=True)
class Exported:
    paths: ExportStagePaths
    card: ModelCard
    uri: str
    run_id: str


def stage_folder(folder: Path, tracked_run, processed_dir: Path) -> ExportStagePaths:
    """The trained checkpoint in a fresh folder with a run of its own in a fresh store
    (the session's tracked run is left as the training tests read it)."""
    models, metrics = folder / "models", folder / "metrics"
    models.mkdir(parents=True)
    shutil.copy(tracked_run.folder / "model.ckpt", models / "model.ckpt")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment = prepare_store(uri, "export")
    run_id = client(uri).create_run(experiment).info.run_id
    write_json(models / "run.json", {"run_id": run_id, "experiment_id": experiment,
                                     "tracking_uri": uri, "experiment": "export"})  # fmt: skip
    write_json(metrics / "evaluate.json", {"test": {"accuracy": 0.9}})
    return ExportStagePaths(
        checkpoint=models / "model.ckpt",
        processed_dir=processed_dir,
        onnx=models / "model.onnx",
        metrics=metrics / "export.json",
        eval_metrics=metrics / "evaluate.json",
    )


@pytest.fixture(scope="module")
def cfg(repo_params) -> ExportConfig:
    quantize = {**repo_params["export"]["quantize"], "calibration_n": 100}
    return ExportConfig.from_params(repo_params, quantize=quantize)


@pytest.fixture(scope="module")
def exported(tracked_run, processed_dir, cfg, tmp_path_factory) -> Exported:
    paths = stage_folder(tmp_path_factory.mktemp("export"), tracked_run, processed_dir)
    ref = json.loads(paths.run_ref.read_text())
    with pytest.MonkeyPatch.context() as env:
        # MLflow sets $MLFLOW_TRACKING_URI when the stage logs; setting it here first makes
        # the context undo it, so later modules' subprocesses do not find this store.
        env.setenv("MLFLOW_TRACKING_URI", ref["tracking_uri"])
        card = run_export_stage(paths, cfg, registered_model=NAME)
    return Exported(paths, card, ref["tracking_uri"], ref["run_id"])


def test_both_models_and_their_cards_are_written(exported):
    paths, float_card = exported.paths, exported.card
    assert paths.int8.name == "model.int8.onnx" and paths.int8.parent == paths.onnx.parent
    int8_card = ModelCard.read_beside(paths.int8)
    int8_card.verify(paths.int8)
    ModelCard.read_beside(paths.onnx).verify(paths.onnx)
    assert (float_card.precision, int8_card.precision) == ("float32", "int8")
    for key in ("mean", "std", "opset", "input", "output", "input_shape", "input_range"):
        assert getattr(int8_card, key) == getattr(float_card, key), key
    how = int8_card.quantization
    assert how["method"] == "static" and how["format"] == "QDQ" and how["per_channel"] is True
    assert how["calibration_n"] == 100 and how["seed"] == 0 and how["onnxruntime"]
    assert paths.int8.stat().st_size < paths.onnx.stat().st_size / 2
    leftovers = [p.name for p in paths.onnx.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


def test_metrics_hold_the_int8_parity_with_float(exported):
    metrics = json.loads(exported.paths.metrics.read_text())
    assert metrics["passed"] is True  # the float export's own parity, as before
    int8 = metrics["int8"]
    assert int8["n_images"] == 200 and int8["method"] == "static"
    assert int8["agreement"] >= 0.95 and int8["mismatches"] <= 10
    assert 0.0 <= int8["max_prob_diff"] <= 1.0
    assert int8["float_test_accuracy"] >= 0.9  # the small trained model reads the blocks
    assert abs(int8["test_accuracy"] - int8["float_test_accuracy"]) <= 0.05
    card = ModelCard.read_beside(exported.paths.int8)
    assert card.test_accuracy == int8["test_accuracy"] and card.sha256 == int8["sha256"]


def test_the_int8_model_is_logged_to_the_run_and_named_in_the_version_tags(exported, tmp_path):
    mlflow = client(exported.uri)
    logged = {f.path for f in mlflow.list_artifacts(exported.run_id, INT8_ARTIFACTS)}
    assert logged == {f"{INT8_ARTIFACTS}/model.int8.onnx", f"{INT8_ARTIFACTS}/model.int8.json"}
    (version,) = mlflow.search_model_versions(f"name='{NAME}'")
    tags = version.tags
    assert tags["sha256"] == exported.card.sha256
    assert tags["int8_sha256"] == sha256_file(exported.paths.int8)
    assert tags["int8_artifact"] == f"{INT8_ARTIFACTS}/model.int8.onnx"
    got = mlflow.download_artifacts(exported.run_id, tags["int8_artifact"], str(tmp_path))
    assert sha256_file(got) == tags["int8_sha256"]
    metrics = mlflow.get_run(exported.run_id).data.metrics
    assert {"export/int8_agreement", "export/int8_test_accuracy"} <= set(metrics)


def test_the_float_card_is_logged_as_the_versions_card(exported):
    """export/model.json in the run: what makes the version promotable (registry.versions)."""
    mlflow = client(exported.uri)
    logged = {f.path for f in mlflow.list_artifacts(exported.run_id, "export")}
    assert "export/model.json" in logged
    (version,) = mlflow.search_model_versions(f"name='{NAME}'")
    assert served_card(mlflow, NAME, version) == exported.card


def test_a_rerun_with_the_same_bytes_is_the_same_version(exported, cfg, monkeypatch, caplog):
    """Exporting the same checkpoint again from the same run (a killed export rerun)
    registers nothing new: a second version of the same file is one the field stage would
    never judge. metrics/export.json names the version, so it is written unchanged."""
    before = exported.paths.metrics.read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", exported.uri)  # as the fixture: undone after
    with caplog.at_level(logging.INFO, logger="mnist_mlops.export.stage"):
        run_export_stage(exported.paths, cfg, registered_model=NAME)
    assert f"reused {NAME} v1: this run registered the same model bytes already" in caplog.text
    (version,) = client(exported.uri).search_model_versions(f"name='{NAME}'")
    assert version.tags["sha256"] == sha256_file(exported.paths.onnx) == exported.card.sha256
    assert version.tags["int8_sha256"] == sha256_file(exported.paths.int8)
    assert exported.paths.metrics.read_bytes() == before
    assert json.loads(before)["registry"] == {"model": NAME, "version": "1"}


def test_a_rerun_writes_the_same_int8_bytes(exported, tracked_run, processed_dir, cfg, tmp_path):
    paths = stage_folder(tmp_path, tracked_run, processed_dir)
    run_export_stage(paths, cfg, registered_model=NAME + "-rerun")
    assert sha256_file(paths.int8) == sha256_file(exported.paths.int8)
    assert paths.int8.with_suffix(".json").read_bytes() == (
        exported.paths.int8.with_suffix(".json").read_bytes()
    )


def test_the_cli_stops_with_one_line_when_calibration_cannot_be_drawn(
    tracked_run, processed_dir, params_writer, stage_cli, tmp_path
):
    paths = stage_folder(tmp_path, tracked_run, processed_dir)
    quantize = {"method": "static", "preprocess": True, "optimize": False,
                "calibration_n": 10**6, "seed": 0}  # fmt: skip
    params = params_writer(tmp_path / "params.yaml", export={"quantize": quantize})
    proc = stage_cli(
        "export", str(paths.checkpoint), str(processed_dir), str(paths.onnx),
        "--params", str(params), "--metrics", str(paths.metrics),
        "--eval-metrics", str(paths.eval_metrics), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "export.quantize.calibration_n" in errors[0], proc.stderr
    assert not paths.int8.exists() and not paths.metrics.exists()
