"""The champion alias moves only to a model at least as good on MNIST test AND every field set."""

import mlflow
import pytest

from mnist_mlops.train.export import export_onnx
from mnist_mlops.train.model import MLP
from mnist_mlops.train.registry import CHAMPION, promote_if_better, register_onnx

pytestmark = pytest.mark.slow


def test_champion_needs_test_and_every_field_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts beside the working directory
    export_onnx(MLP(hidden=(8,)), tmp_path / "m.onnx")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("reg")
    versions = [
        register_onnx(
            tmp_path / "m.onnx", uri, client.create_run(exp).info.run_id, "digits", acc,
            promote=False,
        ).version
        for acc in (0.98, 0.99, 0.985, 0.98)
    ]  # fmt: skip
    assert not any(v.aliases for v in client.search_model_versions("name='digits'"))

    first = promote_if_better(
        uri, "digits", versions[0], {"test_accuracy": 0.98, "field_photo": 0.9}
    )
    # Better on MNIST test, worse on photos: the users would lose, so no promotion.
    worse = promote_if_better(
        uri, "digits", versions[1], {"test_accuracy": 0.99, "field_photo": 0.8}
    )
    # Better on both.
    better = promote_if_better(
        uri, "digits", versions[2], {"test_accuracy": 0.985, "field_photo": 275 / 300}
    )
    # Exactly as good as the champion (whose tag is rounded): "at least as good" promotes.
    tie = promote_if_better(
        uri, "digits", versions[3], {"test_accuracy": 0.985, "field_photo": 275 / 300}
    )

    assert first["promoted"] and first["previous"] is None
    assert not worse["promoted"] and worse["worse_on"] == ["field_photo"]
    assert better["promoted"] and better["previous"] == versions[0]
    assert tie["promoted"] and tie["previous"] == versions[2]
    champion = client.get_model_version_by_alias("digits", CHAMPION)
    assert str(champion.version) == versions[3]
    assert client.get_model_version("digits", versions[1]).tags["field_photo"] == "0.800000"
