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

from mnist_mlops.inference.model_card import card_path  # noqa: E402
from support.registry import register_version  # noqa: E402
from support.versions import smoke_set  # noqa: E402

MODEL_NAME = "mnist-mlp"


def shadow_registry(folder: Path, model: Path) -> None:
    """``folder/mlflow.db`` with ``model`` as champion (v1) and challenger (v2), and
    ``folder/smoke.npz`` labelled by its answers."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "export" / "model.onnx"  # its int8 pair is written beside it
    copy.parent.mkdir()
    shutil.copy(model, copy)
    shutil.copy(card_path(model), card_path(copy))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    register_version(uri, MODEL_NAME, copy, alias="champion")
    register_version(uri, MODEL_NAME, copy, alias="challenger")
    smoke_set(copy, folder / "smoke.npz")
