"""Model Registry: every export is a version; the champion alias only moves up."""

import mlflow
import pytest

from mnist_mlops.train.export import export_onnx
from mnist_mlops.train.model import MLP
from mnist_mlops.train.registry import CHAMPION, register_onnx

pytestmark = pytest.mark.slow


def test_champion_moves_only_to_a_better_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts beside the working directory
    export_onnx(MLP(hidden=(8,)), tmp_path / "m.onnx")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("reg")
    runs = [client.create_run(exp).info.run_id for _ in range(3)]

    first = register_onnx(tmp_path / "m.onnx", uri, runs[0], "digits", 0.98, {"git_commit": "abc"})
    worse = register_onnx(tmp_path / "m.onnx", uri, runs[1], "digits", 0.97)
    better = register_onnx(tmp_path / "m.onnx", uri, runs[2], "digits", 0.985)

    assert (first.version, first.promoted) == ("1", True)
    assert (worse.version, worse.promoted, worse.previous_accuracy) == ("2", False, 0.98)
    assert (better.version, better.promoted, better.previous_champion) == ("3", True, "1")
    champion = client.get_model_version_by_alias("digits", CHAMPION)
    assert str(champion.version) == "3" and champion.run_id == runs[2]
    first = client.get_model_version("digits", "1")
    assert first.tags == {"test_accuracy": "0.980000", "git_commit": "abc"}
    # The registered artifact is a loadable MLflow ONNX model.
    model = mlflow.pyfunc.load_model(f"models:/digits@{CHAMPION}")
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 28, 28)
