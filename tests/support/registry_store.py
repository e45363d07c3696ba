"""A real sqlite MLflow registry for the registry and gate tests: versions registered as
the export stage registers them (the ONNX model logged and registered, its ``sha256`` tag,
its card logged at ``export/model.json``), or without a card, as before the card existed.

    store = make_store(tmp_path)               # one experiment, a small real ONNX model
    v = store.register("mnist-mlp", 0.98)      # "1", with its card
    v = store.register("mnist-mlp", 0.97, card=False)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mnist_mlops.export.register import register_onnx
from mnist_mlops.inference.model_card import MODEL_FILE, ModelCard
from mnist_mlops.registry.versions import EXPORT_ARTIFACTS


@dataclass
class Store:
    uri: str
    client: Any  # mlflow.MlflowClient
    experiment: str
    onnx: Path  # a small exported model every version registers

    def run(self) -> str:
        return self.client.create_run(self.experiment).info.run_id

    def register(self, name: str, accuracy: float, *, card: bool = True) -> str:
        """A new version of ``name`` from a run of its own, as the export stage leaves it."""
        run = self.run()
        model_card = ModelCard.for_model(self.onnx, mean=0.13, std=0.31, test_accuracy=accuracy)
        if card:
            with tempfile.TemporaryDirectory() as tmp:
                written = model_card.write_beside(Path(tmp) / MODEL_FILE)
                self.client.log_artifact(run, str(written), EXPORT_ARTIFACTS)
        with pytest.MonkeyPatch.context() as env:
            # register_onnx calls MLflow 3's set_tracking_uri, which also sets the variable:
            # set here first, the context undoes it, so a module fixture registering on a
            # server never sends later tests' subprocesses to that (stopped) server.
            env.setenv("MLFLOW_TRACKING_URI", self.uri)
            return register_onnx(self.onnx, self.uri, run, name, accuracy).version  # tags sha256


def make_store(folder: Path, server: str | None = None) -> Store:
    """A sqlite store in ``folder`` (artifacts under ``folder/mlruns``), or an experiment of
    its own on ``server`` (which keeps the artifacts), and a tiny model in ``folder``."""
    import mlflow

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    export_onnx(MLP(hidden=(8,)), folder / "m.onnx")
    uri = server or f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    location = None if server else (folder / "mlruns").as_uri()
    experiment = client.create_experiment(f"registry-{folder.name}", location)
    return Store(uri, client, experiment, folder / "m.onnx")
