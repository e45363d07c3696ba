"""Register an exported ONNX model as a new version of the registered model.

The export stage's step, on the training side: it needs the full ``mlflow`` (its ONNX
flavour) and ``onnx``, which the serving side (the registry room it shares with the
service) never imports. Registering never moves an alias: the champion gate does, once the
field sets are scored (:mod:`mnist_mlops.gate.decide`).
"""

from __future__ import annotations

import os

import numpy as np

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.registry.versions import SHA_TAG, TAG_DIGITS, set_tags


def register_onnx(
    onnx_path: str | os.PathLike[str],
    tracking_uri: str,
    run_id: str,
    model_name: str,
    test_accuracy: float,
    tags: dict[str, str] | None = None,
) -> str:
    """Log ``onnx_path`` to ``run_id`` as an MLflow ONNX model and register it; the version.

    Registering never moves the champion alias: the field stage's gate does, once the
    field sets are scored. The version is tagged with the file's SHA-256 (``sha256``): every
    later fetch of it (the gate's rescoring, the champion stage, a following service) is
    hash-checked against that tag.
    """
    import mlflow
    import onnx
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
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
    version = str(info.registered_model_version)
    accuracy = f"{test_accuracy:.{TAG_DIGITS}f}"
    set_tags(
        client, model_name, version, {"test_accuracy": accuracy, SHA_TAG: sha256_file(onnx_path)}
    )
    set_tags(client, model_name, version, tags or {})
    return version
