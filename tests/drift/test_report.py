"""Evidently's drift verdict on tables whose answer is known: same distribution, a moved
column, too few rows; and what the report files hold."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnist_mlops.drift.report import (
    COLUMNS,
    EXIT_DRIFT,
    EXIT_NO_DRIFT,
    EXIT_TOO_FEW,
    DriftSettings,
    compare,
    write_report,
)

SETTINGS = DriftSettings(
    num_method="wasserstein",
    num_threshold=0.1,
    cat_method="jensenshannon",
    cat_threshold=0.1,
    drift_share=0.25,
    min_rows=100,
)


def table(n: int, seed: int, **shift: float) -> pd.DataFrame:
    """Log-like rows: a digit mix and numbers spread like MNIST's; ``shift`` moves columns
    by that many standard deviations."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"digit": rng.integers(0, 10, n)})
    for i, column in enumerate(c for c in COLUMNS if c != "digit"):
        frame[column] = rng.normal(10.0 + i, 1.0 + i / 10, n) + shift.get(column, 0.0) * (
            1.0 + i / 10
        )
    return frame


def test_the_same_distribution_is_no_drift() -> None:
    verdict, snapshot = compare(table(3000, 0), table(400, 1), SETTINGS)
    assert verdict.status == "no_drift" and verdict.exit_status == EXIT_NO_DRIFT
    assert verdict.drifted == []
    assert set(verdict.scores) == set(COLUMNS)
    assert all(s["score"] < s["threshold"] for s in verdict.scores.values())
    assert verdict.line(SETTINGS.min_rows).startswith("no drift: 0 of 8 columns moved")


def test_moved_columns_are_named_and_make_drift() -> None:
    current = table(400, 1, stroke_width=1.0, ink_fraction=0.8)
    verdict, _ = compare(table(3000, 0), current, SETTINGS)
    assert verdict.status == "drift" and verdict.exit_status == EXIT_DRIFT
    assert verdict.drifted == ["stroke_width", "ink_fraction"] or set(verdict.drifted) == {
        "stroke_width",
        "ink_fraction",
    }
    line = verdict.line(SETTINGS.min_rows)
    assert line.startswith("DRIFT: 2 of 8 columns moved") and "stroke_width (" in line
    assert verdict.scores["stroke_width"]["method"] == "wasserstein"


def test_one_moved_column_is_named_but_below_the_drift_share() -> None:
    verdict, _ = compare(table(3000, 0), table(400, 1, com_x=1.0), SETTINGS)
    assert verdict.status == "no_drift" and verdict.drifted == ["com_x"]
    assert "com_x (" in verdict.line(SETTINGS.min_rows) and "2 make drift" in verdict.line(100)


def test_a_new_digit_mix_is_categorical_drift() -> None:
    current = table(400, 1)
    current["digit"] = np.where(np.arange(400) % 2, 1, 7)  # only ones and sevens
    verdict, _ = compare(table(3000, 0), current, SETTINGS)
    assert "digit" in verdict.drifted
    assert verdict.scores["digit"]["method"] == "jensenshannon"


def test_too_few_rows_give_no_verdict_and_run_nothing() -> None:
    verdict, snapshot = compare(table(3000, 0), table(99, 1, stroke_width=3), SETTINGS, skipped=2)
    assert snapshot is None and verdict.status == "too_few_rows"
    assert verdict.exit_status == EXIT_TOO_FEW and verdict.scores == {}
    line = verdict.line(SETTINGS.min_rows)
    assert "99 answered images" in line and "at least 100" in line and "2 corrupt" in line


def test_report_files_hold_the_verdict_and_evidently_result(tmp_path) -> None:
    verdict, snapshot = compare(table(3000, 0), table(400, 1, stroke_width=1.0, com_y=1), SETTINGS)
    html, out = tmp_path / "r" / "drift.html", tmp_path / "r" / "drift.json"
    write_report(verdict, snapshot, html, out, {"start": "a", "end": "b"})
    data = json.loads(out.read_text())
    assert data["status"] == "drift" and sorted(data["drifted"]) == ["com_y", "stroke_width"]
    assert data["window"] == {"start": "a", "end": "b"} and data["rows"] == 400
    assert len(data["evidently"]["metrics"]) == 1 + len(COLUMNS)  # count + one per column
    assert html.stat().st_size > 10_000 and b"stroke_width" in html.read_bytes()
    assert sorted(p.name for p in html.parent.iterdir()) == ["drift.html", "drift.json"]


@pytest.mark.parametrize("rows", [0, 5])
def test_too_few_rows_write_json_only(tmp_path, rows: int) -> None:
    (tmp_path / "d.html").write_text("<html>an earlier window's drift verdict</html>")
    verdict, snapshot = compare(table(3000, 0), table(rows, 1), SETTINGS)
    write_report(verdict, snapshot, tmp_path / "d.html", tmp_path / "d.json", {})
    assert not (tmp_path / "d.html").exists()  # never an old verdict beside the new JSON
    assert json.loads((tmp_path / "d.json").read_text())["status"] == "too_few_rows"


def test_a_column_can_have_its_own_method_and_threshold() -> None:
    """Energy distance is in the column's own units: a 0.3 shift of a column whose spread
    is 1.0 stays under a 0.5 threshold there, though it is 0.3 standard deviations."""
    from dataclasses import replace

    from mnist_mlops.core.errors import UserError

    current = table(400, 1, com_x=0.3)
    normed, _ = compare(table(3000, 0), current, SETTINGS)
    assert "com_x" in normed.drifted
    own = replace(SETTINGS, column_methods={"com_x": "ed"}, column_thresholds={"com_x": 0.5})
    verdict, _ = compare(table(3000, 0), current, own)
    assert "com_x" not in verdict.drifted
    assert verdict.scores["com_x"]["method"] == "ed" and verdict.scores["com_x"]["threshold"] == 0.5
    with pytest.raises(UserError, match="no column"):
        compare(table(3000, 0), current, replace(SETTINGS, column_thresholds={"comx": 1.0}))
