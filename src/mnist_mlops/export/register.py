"""Register an exported ONNX model as a version of the registered model, once per run and file.

The export stage's step, on the training side: it needs the full ``mlflow`` (its ONNX
flavour) and ``onnx``, which the serving side (the registry room it shares with the
service) never imports. Registering never moves an alias: the champion gate does, once the
field sets are scored (:mod:`mnist_mlops.gate.decide`).

A re-export of the same bytes from the same MLflow run (a killed export rerun, an export
param that changed only the int8 copy) is that run's version again: its tags are set anew,
nothing is registered. A second version of the same file would be one the field stage
never judges (its inputs did not change), so the champion stage would report a newer
version "not judged by the gate yet" forever. The same bytes from another run (a
deterministic retrain) are registered as a new version: a version is one run's export, and
its run holds what the version points at (the cards, the int8 file, the metrics, the
dataset digest and commit); the field stage, which finds the version to judge by run and
file (:func:`mnist_mlops.registry.versions.registered_version`), reruns for the new run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.registry.versions import (
    SHA_TAG,
    TAG_DIGITS,
    registered_version,
    set_tags,
    versions_of_file,
)


@dataclass(frozen=True)
class Registration:
    """The version an export is, and whether this export registered it or found it."""

    model: str
    version: str
    reused: bool  # this run had registered the same bytes: tagged again, not registered
    same_bytes: tuple[str, ...] = ()  # other runs' versions of the same file

    def record(self) -> dict[str, str]:
        """What metrics/export.json keeps: the same on a rerun that reuses the version."""
        return {"model": self.model, "version": self.version}

    def line(self) -> str:
        """The stage's output line: which version, and why no new one when reused."""
        if self.reused:
            return (
                f"reused {self.model} v{self.version}: this run registered the same model "
                "bytes already (tags updated, no new version)"
            )
        line = f"registered {self.model} v{self.version}"
        if self.same_bytes:
            others = ", ".join(f"v{v}" for v in self.same_bytes)
            line += f" (the same bytes as {others}, exported by another run)"
        return line


def register_onnx(
    onnx_path: str | os.PathLike[str],
    tracking_uri: str,
    run_id: str,
    model_name: str,
    test_accuracy: float,
    tags: dict[str, str] | None = None,
) -> Registration:
    """Log ``onnx_path`` to ``run_id`` as an MLflow ONNX model and register it, unless the
    run registered these bytes already (then that version, tagged anew); see the module.

    The version is tagged with the file's SHA-256 (``sha256``): every later fetch of it
    (the gate's rescoring, the champion stage, a following service) is hash-checked
    against that tag, and it is how a re-export finds the version.
    """
    import mlflow

    sha256 = sha256_file(onnx_path)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    all_tags = {"test_accuracy": f"{test_accuracy:.{TAG_DIGITS}f}", SHA_TAG: sha256}
    all_tags |= tags or {}
    version = registered_version(tracking_uri, model_name, run_id, sha256)
    if version is not None:
        set_tags(client, model_name, version, all_tags)
        return Registration(model_name, version, reused=True)
    same = tuple(str(v.version) for v in versions_of_file(client, model_name, sha256))
    version = _log_and_register(onnx_path, tracking_uri, run_id, model_name)
    set_tags(client, model_name, version, all_tags)
    return Registration(model_name, version, reused=False, same_bytes=same)


def _log_and_register(
    onnx_path: str | os.PathLike[str], tracking_uri: str, run_id: str, model_name: str
) -> str:
    """The ONNX model logged to ``run_id`` and registered as a new version; the version."""
    import mlflow
    import onnx
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    # A blank canvas with a vertical stroke: a "1" in the 0..255 range the model expects
    # (normalisation is inside the graph). The run page shows it and MLflow validates
    # that the logged model accepts it.
    example = np.zeros((1, 28, 28), dtype=np.float32)
    example[0, 4:24, 12:16] = 255.0
    signature = infer_signature(example, np.zeros((1, 10), dtype=np.float32))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(
            onnx.load(str(onnx_path)),
            name="onnx-model",
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
            await_registration_for=60,
            # One file, the bytes the card's SHA-256 names (MLflow's default moves the
            # weights into a file of their own): what registry.served checks and serves.
            save_as_external_data=False,
        )
    return str(info.registered_model_version)
