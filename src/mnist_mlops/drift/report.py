"""Compare a window of the inference log with the reference: Evidently's drift report.

Evidently's ``DataDriftPreset`` tests each column on its own (the predicted digit as a
categorical column, the confidence and the image features as numerical ones) and its
per-column tests say which ones moved; the verdict is "drift" when at least
``drift_share`` of the columns did. Only distances are offered as methods (config.py):
a p-value test flags ever smaller shifts as the window grows, while a distance over a
fixed threshold means the same on a quiet day and a busy one. Too few answered images in
the window give no verdict at all: a drift test on a handful of rows is a guess. The
report is written as Evidently's HTML (for a person) and a JSON file (for a machine: the
verdict, each column's score and Evidently's own result).

Evidently is imported here only (the ``monitor`` extra), never by the service.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_path, write_json
from mnist_mlops.monitoring.features import FEATURES

CATEGORICAL = ("digit",)  # the predicted digit: a class, not a quantity
NUMERICAL = ("confidence", *FEATURES)
COLUMNS = (*CATEGORICAL, *NUMERICAL)

# Exit statuses a scheduler can act on (2 is a usage or input error: core.cli.run_stage).
EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_TOO_FEW = 0, 3, 4


@dataclass(frozen=True)
class DriftSettings:
    """How drift is decided (params.yaml ``monitor``; see core/config.py)."""

    num_method: str
    num_threshold: float
    cat_method: str
    cat_threshold: float
    drift_share: float
    min_rows: int
    column_methods: dict[str, str] = field(default_factory=dict)  # overrides, by column
    column_thresholds: dict[str, float] = field(default_factory=dict)


@dataclass
class Verdict:
    """What a report concluded, in one line and as fields."""

    status: str  # "drift", "no_drift" or "too_few_rows"
    rows: int  # answered images in the window
    reference_rows: int
    skipped: int  # corrupt or half-written log lines or batches, unusable records
    drifted: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    needed: int = 0  # drifted columns that make a drift verdict

    @property
    def exit_status(self) -> int:
        return {"drift": EXIT_DRIFT, "no_drift": EXIT_NO_DRIFT}.get(self.status, EXIT_TOO_FEW)

    def line(self, min_rows: int) -> str:
        skipped = (
            f"; {self.skipped} corrupt or unusable log records skipped" if self.skipped else ""
        )
        if self.status == "too_few_rows":
            return (
                f"no verdict: {self.rows} answered images in the window, at least {min_rows} "
                f"needed (monitor.min_rows); widen the window{skipped}"
            )
        moved = ", ".join(
            f"{c} ({self.scores[c]['score']:.3g} >= {self.scores[c]['threshold']:g})"
            for c in self.drifted
        )
        of = f"{len(self.drifted)} of {len(self.scores)} columns"
        if self.status == "drift":
            return f"DRIFT: {of} moved: {moved} ({self.rows} images){skipped}"
        extra = f" ({moved}; {self.needed} make drift)" if self.drifted else ""
        return f"no drift: {of} moved{extra} ({self.rows} images){skipped}"


def _dataset(frame: pd.DataFrame) -> Any:
    from evidently import DataDefinition, Dataset

    definition = DataDefinition(
        numerical_columns=list(NUMERICAL), categorical_columns=list(CATEGORICAL)
    )
    table = frame[list(COLUMNS)].copy()
    table["digit"] = table["digit"].astype(int).astype(str)  # categories, not numbers
    return Dataset.from_pandas(table, data_definition=definition)


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings, skipped: int = 0
) -> tuple[Verdict, Any]:
    """The verdict and Evidently's snapshot (None when there were too few rows)."""
    overridden = set(settings.column_methods) | set(settings.column_thresholds)
    unknown = sorted(overridden - set(COLUMNS))
    if unknown:
        raise UserError(f"monitor: no column {unknown}; the columns are {', '.join(COLUMNS)}")
    needed = max(1, math.ceil(settings.drift_share * len(COLUMNS) - 1e-9))
    verdict = Verdict("too_few_rows", len(current), len(reference), skipped, needed=needed)
    if len(current) < settings.min_rows:
        return verdict, None
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(
        columns=list(COLUMNS),
        drift_share=settings.drift_share,
        num_method=settings.num_method,
        num_threshold=settings.num_threshold,
        cat_method=settings.cat_method,
        cat_threshold=settings.cat_threshold,
        per_column_method=dict(settings.column_methods) or None,
        per_column_threshold=dict(settings.column_thresholds) or None,
    )
    snapshot = Report([preset], include_tests=True).run(
        current_data=_dataset(current), reference_data=_dataset(reference)
    )
    verdict.scores = _column_scores(snapshot.dict())
    verdict.drifted = [c for c in COLUMNS if verdict.scores[c]["drifted"]]
    verdict.status = "drift" if len(verdict.drifted) >= needed else "no_drift"
    return verdict, snapshot


def _column_scores(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each column's score, method, threshold and Evidently's own drift decision."""
    scores: dict[str, dict[str, Any]] = {}
    values = {
        m["config"].get("column"): m["value"]
        for m in result["metrics"]
        if m["config"].get("type", "").endswith(":ValueDrift")
    }
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if not params.get("type", "").endswith(":ValueDrift"):
            continue
        column = params["column"]
        scores[column] = {
            "score": float(values[column]),
            "method": params["method"],
            "threshold": float(params["threshold"]),
            "drifted": test["status"] == "FAIL",
        }
    missing = set(COLUMNS) - set(scores)
    if missing:
        raise RuntimeError(f"Evidently returned no drift test for {sorted(missing)}")
    return scores


def write_report(
    verdict: Verdict,
    snapshot: Any,
    html_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str],
    window: dict[str, str],
) -> None:
    """Evidently's HTML (when there was a comparison) and the JSON, each written atomically.

    Without a comparison an earlier window's HTML is removed: left beside the new JSON it
    would show an old verdict as the current one.
    """
    if snapshot is not None:
        with atomic_path(html_path) as tmp:
            snapshot.save_html(str(tmp))
    else:
        Path(html_path).unlink(missing_ok=True)
    payload = {
        **asdict(verdict),
        "window": window,
        "evidently": json.loads(snapshot.json()) if snapshot is not None else None,
    }
    write_json(json_path, payload)
