"""Champion against challenger on a constructed log and a real corrections store: the
numbers are exact, the verdict is the exit status, old records are counted, bad input is
one line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.drift.challenger import compare, mcnemar_exact, wilson
from mnist_mlops.drift.pairs import load_pairs
from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.logfiles import LogFile
from mnist_mlops.monitoring.records import Answered, build_records, parse_record

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
SINCE, UNTIL = "2026-01-05T00:00", "2026-01-06T00:00"
# The fields a record names its models by (null in the writer's records until it sets them).
MODEL_FIELDS = ("model_role", "registry_version", "shadow_version", "shadow_role",
                "shadow_digit", "shadow_confidence")  # fmt: skip


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


def line(req: Req, i: int, when: datetime) -> str:
    """The request's record as the log writer writes it, with the model fields set."""
    answer = req.champion if req.answered_by == "champion" else req.challenger
    probabilities = np.full((1, 10), 0.1 / 9)
    probabilities[0, answer] = 0.9
    pixels = np.zeros((1, 28, 28), np.float32)
    pixels[:, 4:24, 12:16] = 255.0  # a stroke: every image feature is a finite number
    answered = Answered([f"{i:032x}"], when.timestamp(), "/predict", "upload", pixels,
                        probabilities)  # fmt: skip
    record = json.loads(build_records([answered], "ab12", "0" * 64, images=False)[0])
    if req.challenger is None:
        record.update(model_role="champion", registry_version="3")
        return json.dumps(record)
    other = "challenger" if req.answered_by == "champion" else "champion"
    shadow = req.challenger if other == "challenger" else req.champion
    versions = {"champion": "3", "challenger": "4"}
    record.update(model_role=req.answered_by, registry_version=versions[req.answered_by],
                  shadow_version=versions[other], shadow_role=other, shadow_digit=shadow,
                  shadow_confidence=0.6)  # fmt: skip
    return json.dumps(record)


def old_records() -> list[str]:
    """Three records as the log wrote them before it named the models."""
    old = [json.loads(line(Req(6, 6), 200 + i, T0)) for i in range(3)]
    return [json.dumps({k: v for k, v in r.items() if k not in MODEL_FIELDS}) for r in old]


def write_window(tmp_path: Path, requests: list[Req], swap: bool = False) -> tuple[Path, str]:
    """The log folder and the corrections store for ``requests``, plus records that are not
    pairs: 4 from one model only, 3 in the old format, 2 outside the window, one corrupt."""
    if swap:  # the same traffic with the two models' roles exchanged
        requests = [Req(r.challenger, r.champion, r.truth, r.answered_by) for r in requests]
    folder, uri = tmp_path / "inference", f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    lines = [line(r, i, T0) for i, r in enumerate(requests)]
    lines += [line(Req(5, None, 5), 100 + i, T0) for i in range(4)]
    lines += old_records()
    lines += [line(Req(2, 3, 2), 300 + i, T0 - timedelta(days=2)) for i in range(2)]
    log = LogFile(folder, rotate_bytes=10**9)
    log.append(("\n".join(lines) + '\n{"request_id": "cut sh').encode())
    log.close()
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
    # An old record: not a comparison, counted as old, or as one model's if the reader
    # gives old records a default role.
    old = old_records()[0]
    known_old = 3 if parse_record(old).get("model_role") is None else 0  # type: ignore[union-attr]
    assert (len(window.pairs), window.single + window.old, window.old) == (40, 7, known_old)
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
    assert verdict.versions == {"champion": {"3": 40}, "challenger": {"4": 40}}
    assert sum(verdict.histograms["champion"]) == 40
    assert verdict.histograms["challenger"][12] == 35  # 0.6: the shadow's confidence
    assert verdict.status == "better" and verdict.exit_status == 0


def test_unusable_model_fields_are_skipped_and_counted(tmp_path) -> None:
    good = json.loads(line(Req(3, 8), 0, T0))
    bad = [
        {"shadow_role": "champion"},
        {"shadow_digit": "8"},
        {"shadow_digit": 12},
        {"model_role": "intern"},
        {"shadow_confidence": None},
        {"shadow_confidence": 1.5},
    ]
    log = LogFile(tmp_path, rotate_bytes=10**9)
    log.append("".join(json.dumps({**good, **b}) + "\n" for b in [{}, *bad]).encode())
    log.close()
    window = load_pairs(tmp_path, T0, T0 + timedelta(seconds=1))
    assert (len(window.pairs), window.skipped, window.records) == (1, 6, 7)
    assert window.pairs[0].digits == {"champion": 3, "challenger": 8}
    assert window.pairs[0].versions == {"champion": "3", "challenger": "4"}


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
    assert report["records"]["old_format"] + report["records"]["single_model"] == 7
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
