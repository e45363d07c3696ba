"""Champion against challenger on a constructed log and a real corrections store: the
numbers are exact, the verdict is the exit status, old records are counted, bad input is
one line."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mnist_mlops.drift.challenger import compare, mcnemar_exact, wilson
from mnist_mlops.drift.pairs import load_pairs
from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.features import image_features
from mnist_mlops.monitoring.records import LOG_SCHEMA, Answered, ModelTag, build_batch
from support.logdir import MODEL, cut_short, legacy_path, set_mtime, write_arrows

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
SINCE, UNTIL = "2026-01-05T00:00", "2026-01-06T00:00"
TAGS = {"champion": MODEL, "challenger": ModelTag("77b0d2aa11ff", "77b0d2aa11ff" + "0" * 52,
                                                  "challenger", "4")}  # fmt: skip
STROKE = np.zeros((1, 28, 28), np.float32)
STROKE[:, 4:24, 12:16] = 255.0  # every image feature a finite number


@dataclass(frozen=True)
class Req:
    """One request: what each model said, who answered, what the user said (None: nothing)."""

    champion: int
    challenger: int | None  # None: no second model scored it
    truth: int | None = None
    answered_by: str = "champion"


def scenario() -> list[Req]:
    """40 pairs (28 agree) and 30 corrections: champion right on 12, challenger on 20,
    only the champion right on 2, only the challenger on 10 (5 of them canary answers)."""
    both_right = [Req(1, 1, 1 if i < 10 else None) for i in range(20)]
    challenger_fixes = [Req(3, 8, 8, "challenger" if i < 5 else "champion") for i in range(10)]
    champion_only = [Req(4, 9, 4) for _ in range(2)]
    both_wrong = [Req(7, 7, 2) for _ in range(8)]
    return both_right + challenger_fixes + champion_only + both_wrong


def one_hot(digit: int, p: float) -> np.ndarray:
    probabilities = np.full((1, 10), (1 - p) / 9)
    probabilities[0, digit] = p
    return probabilities


def batch(req: Req, i: int, when: datetime) -> pa.RecordBatch:
    """The request's record batch as the log writer builds it: the answering model's
    digit at 0.9, the other model's (if any) at 0.6."""
    answer = req.champion if req.answered_by == "champion" else req.challenger
    assert answer is not None
    answered = Answered([f"{i:032x}"], when.timestamp(), "/predict", "upload", STROKE,
                        one_hot(answer, 0.9), TAGS[req.answered_by])  # fmt: skip
    if req.challenger is not None:
        other = "challenger" if req.answered_by == "champion" else "champion"
        shadow = req.challenger if other == "challenger" else req.champion
        answered = replace(answered, shadow=TAGS[other], shadow_probabilities=one_hot(shadow, 0.6))
    return build_batch([answered], MODEL, images=False)


def old_lines(ids: range, when: datetime) -> bytes:
    """Records as the log wrote them in JSON lines before it named the models."""
    record = {"time": when.isoformat(), "model_version": MODEL.version,
              "model_sha256": MODEL.sha256, "endpoint": "/predict", "source": "upload",
              "digit": 6, "confidence": 0.9, "margin": 0.8, **image_features(STROKE[0]),
              "input_png": None}  # fmt: skip
    return b"".join(json.dumps({**record, "request_id": f"{i:032x}"}).encode() + b"\n" for i in ids)


def write_window(tmp_path: Path, requests: list[Req], swap: bool = False) -> tuple[Path, str]:
    """The log folder and the corrections store for ``requests``, plus records that are not
    pairs: 4 from one model only, 3 in the old format, 2 outside the window, one corrupt."""
    if swap:  # the same traffic with the two models' roles exchanged
        requests = [Req(r.challenger, r.champion, r.truth, r.answered_by) for r in requests]
    folder, uri = tmp_path / "inference", f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    written = [batch(Req(2, 3, 2), 300 + i, T0 - timedelta(days=2)) for i in range(2)]
    written += [batch(r, i, T0) for i, r in enumerate(requests)]
    written += [batch(Req(5, None, 5), 100 + i, T0) for i in range(4)]
    write_arrows(folder, written, extra=cut_short(written[-1]))  # open for two quiet days
    old = legacy_path(folder, T0 - timedelta(hours=3), pid=2)
    old.write_bytes(old_lines(range(200, 203), T0))
    set_mtime(old, T0)
    store = CorrectionsStore(uri)
    ids = [f"{i:032x}" for i in [*range(len(requests)), *range(100, 104), *range(300, 302)]]
    store.add_requests(ids, "inference.jsonl", T0.timestamp())
    truths = {i: r.truth for i, r in enumerate(requests)} | {100: 5, 101: 5, 300: 2, 301: 2}
    for i, truth in truths.items():
        if truth is not None:
            store.add(f"{i:032x}", truth)
    store.close()
    return folder, uri


def test_agreement_accuracy_and_the_paired_test_are_exact(tmp_path) -> None:
    folder, uri = write_window(tmp_path, scenario())
    window = load_pairs(folder, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    # The old records are the champion's alone (the reader gives them its role): one model.
    assert (len(window.pairs), window.single) == (40, 4 + 3)
    assert (window.skipped, window.outside, window.records) == (1, 2, 47)
    corrections = {r[0]: r[1] for r in CorrectionsStore(uri).corrections()}
    verdict = compare(window.pairs, corrections, min_corrections=30, alpha=0.05)
    assert (verdict.pairs, verdict.corrected) == (40, 30)
    assert (verdict.agreement["k"], verdict.agreement["n"]) == (28, 40)
    assert verdict.accuracy["champion"]["k"] == 12 and verdict.accuracy["champion"]["n"] == 30
    assert verdict.accuracy["challenger"]["k"] == 20
    assert (verdict.paired["champion_only"], verdict.paired["challenger_only"]) == (2, 10)
    assert verdict.paired["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert verdict.paired["difference"] == pytest.approx(8 / 30)
    assert verdict.answered_by == {"champion": 25, "challenger": 5}
    answering = {r: {p.versions[r] for p in window.pairs if p.answered_by == r} for r in TAGS}
    assert answering == {"champion": {"3"}, "challenger": {"4"}}
    assert sum(verdict.histograms["champion"]) == 40
    assert verdict.histograms["challenger"][12] == 35  # 0.6: the shadow's confidence
    assert verdict.status == "better" and verdict.exit_status == 0


def test_both_models_are_named_by_registry_version(tmp_path) -> None:
    folder, uri = write_window(tmp_path, scenario())
    window = load_pairs(folder, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    verdict = compare(window.pairs, {}, min_corrections=30, alpha=0.05)
    assert verdict.versions == {"champion": {"3": 40}, "challenger": {"4": 40}}


def test_unusable_model_fields_are_skipped_and_counted(tmp_path) -> None:
    good = batch(Req(3, 8), 0, T0).to_pylist()[0]
    bad = [
        {"shadow_role": "champion"},
        {"shadow_digit": -1},
        {"shadow_digit": 12},
        {"model_role": "intern"},
        {"model_role": None},
        {"shadow_confidence": None},
        {"shadow_confidence": 1.5},
    ]
    rows = [{**good, **b} for b in [{}, *bad]]
    write_arrows(tmp_path, [pa.RecordBatch.from_pylist(rows, schema=LOG_SCHEMA)])
    window = load_pairs(tmp_path, T0, T0 + timedelta(seconds=1))
    assert (len(window.pairs), window.skipped, window.records) == (1, 7, 8)
    assert window.pairs[0].digits == {"champion": 3, "challenger": 8}
    assert window.pairs[0].versions["champion"] == "3"  # the answering model's registry version


def test_the_intervals_and_the_test_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(12, 30), (0, 7), (40, 40), (523, 1000)]:
        expected = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k, n, 0.05) == pytest.approx((expected.low, expected.high))
    for b, c in [(2, 10), (0, 0), (7, 7), (1, 30)]:
        expected = stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        assert mcnemar_exact(b, c) == pytest.approx(expected)
    assert wilson(0, 0, 0.05) is None


def compare_cli(stage_cli, tmp_path: Path, folder: Path, uri: str, *extra: str):
    out = tmp_path / "reports"
    return stage_cli("compare", "--log-dir", str(folder), "--store", uri, "--since", SINCE,
                     "--until", UNTIL, "--html", str(out / "compare.html"),
                     "--json", str(out / "compare.json"), *extra)  # fmt: skip


@pytest.mark.parametrize(
    ("swap", "min_corrections", "status", "word"),
    [(False, 30, 0, "CHALLENGER BETTER"), (True, 30, 3, "CHALLENGER WORSE"),
     (False, 31, 4, "no verdict")],
)  # fmt: skip
def test_the_verdict_is_the_exit_status_with_html_and_json_beside_it(
    tmp_path, stage_cli, params_writer, swap, min_corrections, status, word
) -> None:
    folder, uri = write_window(tmp_path, scenario(), swap=swap)
    params = params_writer(tmp_path / "params.yaml", compare={"min_corrections": min_corrections})
    proc = compare_cli(stage_cli, tmp_path, folder, uri, "--params", str(params))
    assert proc.returncode == status, proc.stderr
    verdict_line, counts_line = proc.stdout.splitlines()
    assert verdict_line.startswith(word) and "30 corrected" in verdict_line
    assert counts_line.startswith("47 records from 2026-01-05T00:00:00+00:00")
    assert "40 scored by both models; 7 not comparisons (" in counts_line
    report = json.loads((tmp_path / "reports/compare.json").read_text())
    assert report["exit_status"] == status and report["line"] == verdict_line
    assert report["records"]["single_model"] == 7
    page = (tmp_path / "reports/compare.html").read_text()
    assert verdict_line.replace("'", "&#x27;") in page and page.count("<rect") == 40


def test_equal_models_are_no_clear_difference(tmp_path, stage_cli) -> None:
    requests = [Req(1, 1, 1)] * 25 + [Req(3, 8, 8)] * 3 + [Req(4, 9, 4)] * 3
    folder, uri = write_window(tmp_path, requests)
    proc = compare_cli(stage_cli, tmp_path, folder, uri)
    assert proc.returncode == 5 and proc.stdout.startswith("no clear difference"), proc.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path, stage_cli) -> None:
    folder, uri = write_window(tmp_path, [Req(1, 1)])
    missing = compare_cli(stage_cli, tmp_path, tmp_path / "nowhere", uri)
    empty = stage_cli("compare", "--log-dir", str(folder), "--store", uri,
                      "--since", UNTIL, "--until", SINCE)  # fmt: skip
    for proc, words in [(missing, "no inference log folder"), (empty, "the window is empty")]:
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    unknown = stage_cli("compare", "--log-dir", str(folder), "--windw", "3")
    assert unknown.returncode == 2 and "unrecognized arguments: --windw 3" in unknown.stderr
    assert not (tmp_path / "reports").exists()
