"""The package's arrows point one way, and each DVC stage depends on exactly what it imports.

The Bento and the serving image ship the rooms in ``SERVING_SIDE`` without torch, Lightning
or MLflow: an import of those from the serving side would only show up as a crash in the
container. Training data must not depend on the evaluation code. And a stage whose deps
list a package it does not import reruns (or retrains) for nothing, while one that misses
a package it imports does not rerun when that code changes. All of this is read
statically from the code, so it costs nothing to check. docs/architecture.md shows
``ALLOWED`` as rendered by :func:`render_arrows` (tests/test_docs_claims.py).
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "mnist_mlops"
TRAINING_ONLY = ("torch", "torchvision", "pytorch_lightning", "lightning", "mlflow", "onnx")
# What the Bento and the image ship:
SERVING_SIDE = ("core", "imaging", "inference", "monitoring", "registry")
# The serving side reaches the registry through MLflow's client API alone (mlflow-skinny in
# the serve lock), from the registry room only; never a model flavour or onnx itself.
REGISTRY_CLIENT_ROOM = "registry"
FULL_MLFLOW_ONLY = ("mlflow.onnx", "mlflow.models", "mlflow.pyfunc", "mlflow.pytorch")

# Which rooms each room may import (the data-flow order of docs/architecture.md).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    # The corrections dataset (the export and its format): numpy only, read by training.
    "corrections": {"core"},
    "imaging": {"core"},
    "inference": {"core"},
    "prepare": {"core", "data", "imaging"},
    "tracking": {"core"},
    # The Model Registry (versions, aliases, their history): read by services too, so it
    # imports MLflow's client API only, lazily, and nothing of the training side.
    "registry": {"core", "inference"},
    "train": {"core", "corrections", "data", "tracking"},
    "evaluation": {"core", "data", "imaging", "inference"},
    # The export stage's library: a checkpoint (train) -> ONNX checked on the test split
    # (data) -> logged to the run (tracking) and registered (registry).
    "export": {"core", "data", "inference", "registry", "tracking", "train"},
    # The field stage's library: each artifact scored through the serving path (evaluation),
    # the one to serve chosen (inference's served.json), logged to the run (tracking), the
    # champion gate's decision and its alias move (registry).
    "gate": {"core", "corrections", "data", "evaluation", "inference", "registry", "tracking"},
    # The Bento from the champion stage's folder (registry.deployment: its smoke set's name).
    "packaging": {"core", "inference", "registry"},
    "scoring": {"core", "data", "imaging", "inference", "tracking"},
    "monitoring": {"core", "imaging", "inference"},
    "drift": {"core", "evaluation", "imaging", "inference", "monitoring"},
    "reporting": {"core"},
}


def _rooms_md(rooms: Iterable[str]) -> str:
    return ", ".join(f"`{room}`" for room in rooms)


def render_arrows() -> str:
    """``ALLOWED`` and ``SERVING_SIDE`` as the markdown table in docs/architecture.md.

    The docs show what this file enforces, rendered from it (tests/test_docs_claims.py
    fails when the page's copy differs), so the page cannot describe arrows nobody checks.
    Rooms with the same allowance share a row, in the data-flow order of ``ALLOWED``.
    """
    rows: dict[frozenset[str], list[str]] = {}
    for room, allowed in ALLOWED.items():
        rows.setdefault(frozenset(allowed), []).append(room)
    never = _rooms_md(TRAINING_ONLY)
    lines = [
        "| room | may import |",
        "| --- | --- |",
        *(
            f"| {_rooms_md(group)} | {_rooms_md(sorted(allowed)) or 'nothing of ours'} |"
            for allowed, group in rows.items()
        ),
        f"| `serving/` (the app) | {_rooms_md(SERVING_SIDE)}; never {never} or `pipeline` |",
    ]
    return "\n".join(lines)


def render_serving_side() -> str:
    """The sentence in docs/serving.md that says what the app imports, from ``SERVING_SIDE``."""
    *first, last = SERVING_SIDE
    return textwrap.fill(
        f"From the library it imports only {_rooms_md(first)} and `{last}`, never torch, "
        "Lightning, MLflow beyond the client API the registry room uses (mlflow-skinny) "
        "or the stage scripts (`tests/test_layers.py` checks every import; "
        "the table is in [architecture.md](architecture.md#import-arrows)).",
        width=92,
        break_on_hyphens=False,
    )


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, function-level imports included (absolute only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "mnist_mlops":  # from mnist_mlops import imaging
                names.update(f"mnist_mlops.{alias.name}" for alias in node.names)
    return names


def rooms_imported(paths: list[Path]) -> set[str]:
    return {
        name.split(".")[1]
        for path in paths
        for name in imports(path)
        if name.startswith("mnist_mlops.")
    }


def rooms() -> list[str]:
    return sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").is_file())


def modules(*folders: Path) -> list[Path]:
    return [path for folder in folders for path in sorted(folder.glob("*.py"))]


def closure(start: set[str]) -> set[str]:
    """The rooms ``start`` imports, and the rooms those import, and so on."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        room = todo.pop()
        if room not in seen:
            seen.add(room)
            todo.extend(rooms_imported(modules(PKG / room)) - seen)
    return seen


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_room_is_in_the_arrow_table() -> None:
    assert set(rooms()) == set(ALLOWED)


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_room_imports_only_what_the_arrows_allow(room: str) -> None:
    extra = rooms_imported(modules(PKG / room)) - ALLOWED[room] - {room}
    assert not extra, f"mnist_mlops.{room} imports {sorted(extra)}; allowed: {ALLOWED[room]}"


@pytest.mark.parametrize(
    "path", modules(*(PKG / r for r in SERVING_SIDE), ROOT / "serving"), ids=_id
)
def test_serving_side_imports_nothing_from_training(path: Path) -> None:
    client_room = path.is_relative_to(PKG / REGISTRY_CLIENT_ROOM)
    bad = sorted(
        name
        for name in imports(path)
        if (name.split(".")[0] in TRAINING_ONLY and not (client_room and _mlflow_client(name)))
        or (name.startswith("mnist_mlops.") and name.split(".")[1] not in SERVING_SIDE)
        or name.startswith("pipeline")
    )
    assert not bad, f"{_id(path)} imports {bad}"


def _mlflow_client(name: str) -> bool:
    """An import of MLflow's client API (what mlflow-skinny ships), not a model flavour."""
    return name.split(".")[0] == "mlflow" and not name.startswith(FULL_MLFLOW_ONLY)


def test_the_bento_ships_exactly_the_serving_side() -> None:
    include = re.findall(r'^\s*-\s*"(src/[^"]+)"', (ROOT / "bentofile.yaml").read_text(), re.M)
    assert set(include) == {"src/mnist_mlops/__init__.py"} | {
        f"src/mnist_mlops/{room}/**" for room in SERVING_SIDE
    }


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_depends_on_exactly_the_rooms_it_imports(stage: str) -> None:
    spec = _stages()[stage]
    deps = [str(d) for d in spec["deps"]]
    script = re.search(r"python -m pipeline\.(\w+)", spec["cmd"]).group(1)
    assert f"pipeline/{script}.py" in deps
    code = [ROOT / "pipeline" / f"{script}.py"]
    if "serving" in deps:  # the package stage builds the app into the Bento
        code += modules(ROOT / "serving")
    declared = {d.split("/")[2] for d in deps if d.startswith("src/mnist_mlops/")}
    assert declared == closure(rooms_imported(code)), f"dvc.yaml deps of {stage}"
