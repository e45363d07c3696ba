"""The dependency arrows point one way: serving never pulls in the training side.

The Bento and the serving image ship ``mnist_mlops.core`` and ``mnist_mlops.serve``
without torch, Lightning or MLflow; an import of those from the serving side would only
show up as a crash in the container. This reads every import statically.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "mnist_mlops"
TRAINING_ONLY = ("torch", "torchvision", "pytorch_lightning", "lightning", "mlflow", "onnx")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute imports; relative ones are not used here)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(*folders: Path) -> list[Path]:
    return [path for folder in folders for path in sorted(folder.glob("*.py"))]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", modules(PKG / "core", PKG / "serve", ROOT / "serving"), ids=_id)
def test_serving_side_imports_nothing_from_training(path: Path) -> None:
    bad = sorted(
        name
        for name in imports(path)
        if name.split(".")[0] in TRAINING_ONLY
        or name.startswith(("mnist_mlops.train", "mnist_mlops.data", "pipeline"))
    )
    assert not bad, f"{_id(path)} imports {bad}"


@pytest.mark.parametrize("path", modules(PKG / "core"), ids=_id)
def test_core_imports_neither_side(path: Path) -> None:
    bad = sorted(n for n in imports(path) if n.startswith(("mnist_mlops.serve", "bentoml")))
    assert not bad, f"{_id(path)} imports {bad}"


def test_the_bento_ships_exactly_the_serving_side() -> None:
    include = re.findall(r'^\s*-\s*"(src/[^"]+)"', (ROOT / "bentofile.yaml").read_text(), re.M)
    assert set(include) == {
        "src/mnist_mlops/__init__.py",
        "src/mnist_mlops/core/**",
        "src/mnist_mlops/serve/**",
    }
