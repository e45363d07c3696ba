"""Markdown tables and number formats for the results page (see results.py)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mnist_mlops.core.errors import UserError


def table(head: list[str], rows: list[list[object]]) -> str:
    lines = [head, ["---"] * len(head), *rows]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines)


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f} %"


def num(value: float | None, fmt: str, unit: str = "", none: str = "not reached") -> str:
    """``value`` formatted, or ``none`` where a benchmark recorded no value (None)."""
    return none if value is None else format(value, fmt) + unit


def load(path: Path) -> object:
    """A results file's data (JSON, JSON lines or YAML), or one line naming the file."""
    try:
        text = path.read_text()
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: {exc}; rerun the stage or benchmark that writes it") from exc
