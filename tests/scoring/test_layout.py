"""Import arrows of the scoring package: Ray stays optional, importing it pulls in nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from support import ROOT

SCORING = ROOT / "src" / "mnist_mlops" / "scoring"


def top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_package_imports_nothing_by_itself() -> None:
    assert top_level_imports(SCORING / "__init__.py") == set()


def test_ray_is_imported_only_when_its_engine_runs() -> None:
    for path in SCORING.glob("*.py"):
        assert "ray" not in {n.split(".")[0] for n in top_level_imports(path)}, path.name
    code = "import sys, pipeline.score; print(sorted({'ray', 'torch'} & set(sys.modules)))"
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
