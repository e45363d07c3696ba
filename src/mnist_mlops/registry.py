"""Log the ONNX model as an MLflow model and promote it in the Model Registry.

Every export registers a new version of ``registered_model``; the ``champion``
alias moves to it only when its test accuracy beats the current champion's, so
``models:/mnist-mlp@champion`` always names the best model seen so far and a
worse experiment never demotes it.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass(frozen=True)
class Registration:
    version: str
    test_accuracy: float
    previous_champion: str | None
    previous_accuracy: float | None
    promoted: bool


def register_onnx(
    onnx_path: str | os.PathLike[str],
    tracking_uri: str,
    run_id: str,
    model_name: str,
    test_accuracy: float,
    tags: dict[str, str] | None = None,
) -> Registration:
    """Log ``onnx_path`` to ``run_id`` as an MLflow ONNX model, register it, maybe promote it."""
    import mlflow
    import onnx
    from mlflow.exceptions import MlflowException
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
        )
    version = str(info.registered_model_version)
    for key, value in {"test_accuracy": f"{test_accuracy:.6f}", **(tags or {})}.items():
        client.set_model_version_tag(model_name, version, key, value)

    try:
        current = client.get_model_version_by_alias(model_name, CHAMPION)
        prev_version: str | None = str(current.version)
        prev_acc: float | None = float(current.tags.get("test_accuracy", "nan"))
    except MlflowException:
        prev_version, prev_acc = None, None
    promote = prev_acc is None or math.isnan(prev_acc) or test_accuracy > prev_acc
    if promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        log.info(
            "%s v%s is the new %s (test accuracy %.4f)",
            model_name,
            version,
            CHAMPION,
            test_accuracy,
        )
    else:
        log.info(
            "%s v%s (%.4f) does not beat %s v%s (%.4f); alias unchanged",
            model_name,
            version,
            test_accuracy,
            CHAMPION,
            prev_version,
            prev_acc,
        )
    return Registration(version, test_accuracy, prev_version, prev_acc, promote)
