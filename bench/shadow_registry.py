"""A registry for bench/serve_load.py's "ours-shadow" server: one model as champion and as
challenger, with a smoke set it passes, in a fresh sqlite store.

Made the way the tests make registries (tests/support/registry.py: the export and field
stages' layout), so the service follows it exactly as it follows the pipeline's. The
challenger is the same file registered again: shadowing costs the same second model call
and the same wider log records whatever the challenger's weights.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mnist_mlops.inference.model_card import MODEL_FILE, ModelCard, card_path  # noqa: E402
from support.gated import INT8_NAME  # noqa: E402
from support.registry import register_version  # noqa: E402
from support.versions import smoke_set  # noqa: E402

MODEL_NAME = "mnist-mlp"


def shadow_registry(folder: Path, model: Path) -> None:
    """``folder/mlflow.db`` with ``model`` as champion (v1) and challenger (v2), each serving
    ``model``'s precision, and ``folder/smoke.npz`` labelled by its answers.

    An int8 ``model`` is registered as the export stage registers it: the float model
    beside it (``model.onnx``) is the version, the int8 file its served artifact."""
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "export"
    export.mkdir()
    precision = ModelCard.read_beside(model).precision
    source = model.with_name(MODEL_FILE) if precision == "int8" else model
    copy = _copy(source, export / MODEL_FILE)
    int8 = _copy(model, export / INT8_NAME) if precision == "int8" else None
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    for alias in ("champion", "challenger"):
        register_version(uri, MODEL_NAME, copy, int8_path=int8, served=precision, alias=alias)
    smoke_set(int8 or copy, folder / "smoke.npz")


def _copy(model: Path, to: Path) -> Path:
    """``model`` and its card, as ``to`` and the card beside it."""
    shutil.copy(model, to)
    shutil.copy(card_path(model), card_path(to))
    return to
