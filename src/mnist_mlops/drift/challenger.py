"""Champion against challenger: the pairs of answers (:mod:`.pairs`) and the corrections.

Agreement needs no labels. Accuracy does: a corrected request gives the digit the user
says the image shows, and on the corrected pairs both models are scored on the same
images, so the difference is judged by McNemar's exact test, which looks only at the
pairs where exactly one of the two was right. Intervals are Wilson's (a proportion) and
Wald's (the paired difference, for reading; the test decides). Fewer corrected pairs than
the setting give no verdict instead of a guess.

Corrections are what users chose to send, mostly for answers they saw were wrong, and a
user sees only the answer of the model that answered: on the corrected pairs that model is
scored on its visible mistakes. In shadow mode the question answered is "would the
challenger have fixed what users found wrong?", not its accuracy on all traffic; canary
traffic lets users correct the challenger's own answers too. ``answered_by`` counts the
corrected pairs by who answered, so the report shows which question it answered.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from statistics import NormalDist

from mnist_mlops.drift.pairs import CHALLENGER, CHAMPION, ROLES, Pair

BINS = 20  # confidence histogram bins over [0, 1]
UNREGISTERED = "unregistered"  # a model served from a file: no registry version

# Exit statuses a scheduler can act on (2 is a usage or input error: core.cli.run_stage).
EXIT_BETTER, EXIT_WORSE, EXIT_TOO_FEW, EXIT_NO_DIFFERENCE = 0, 3, 4, 5


def wilson(k: int, n: int, alpha: float) -> tuple[float, float] | None:
    """Wilson's score interval for k successes in n at level 1 - alpha (None if n is 0)."""
    if n == 0:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c are the two kinds of discordant pairs.

    Under "equally accurate" each discordant pair goes either way with probability 1/2,
    so the p-value is a binomial tail, computed in integers (exact for any count).
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


@dataclass
class Verdict:
    """What the comparison concluded, in one line and as fields (the JSON's top level)."""

    status: str  # "better", "worse", "no_difference" or "too_few_corrections"
    pairs: int  # requests both models scored in the window
    corrected: int  # ... of them with a correction (the accuracy sample)
    min_corrections: int
    alpha: float
    agreement: dict[str, object] = field(default_factory=dict)
    accuracy: dict[str, dict[str, object]] = field(default_factory=dict)  # by role
    paired: dict[str, object] = field(default_factory=dict)  # McNemar and the difference
    answered_by: dict[str, int] = field(default_factory=dict)  # corrected pairs, by role
    versions: dict[str, dict[str, int]] = field(default_factory=dict)  # pairs per version
    histograms: dict[str, list[int]] = field(default_factory=dict)  # by role, BINS each

    @property
    def exit_status(self) -> int:
        return {
            "better": EXIT_BETTER,
            "worse": EXIT_WORSE,
            "no_difference": EXIT_NO_DIFFERENCE,
        }.get(self.status, EXIT_TOO_FEW)

    def line(self) -> str:
        text = (
            f"{self.pairs} requests both models scored, agreement "
            f"{_pct(self.agreement.get('rate'))}; {self.corrected} corrected"
        )
        mixed = [
            f"{r} versions {', '.join(sorted(self.versions[r]))}"
            for r in ROLES
            if len(self.versions.get(r, {})) > 1
        ]
        note = f"; the window mixes {' and '.join(mixed)}" if mixed else ""
        if self.status == "too_few_corrections":
            return (
                f"no verdict: {text}, at least {self.min_corrections} needed "
                f"(compare.min_corrections); widen the window or wait for corrections{note}"
            )
        acc = {role: _pct(self.accuracy[role]["rate"]) for role in ROLES}
        head = {
            "better": "CHALLENGER BETTER",
            "worse": "CHALLENGER WORSE",
            "no_difference": f"no clear difference at alpha {self.alpha:g}",
        }[self.status]
        return (
            f"{head}: {text}: champion {acc[CHAMPION]}, challenger {acc[CHALLENGER]} correct "
            f"(McNemar p = {self.paired['p_value']:.3g}; only the champion right "
            f"{self.paired['champion_only']}, only the challenger {self.paired['challenger_only']})"
            f"{note}"
        )


def _pct(rate: object) -> str:
    return "n/a" if rate is None else f"{100 * float(rate):.1f} %"  # type: ignore[arg-type]


def _rate(k: int, n: int, alpha: float) -> dict[str, object]:
    return {"n": n, "k": k, "rate": k / n if n else None, "ci": wilson(k, n, alpha)}


def compare(pairs: list[Pair], corrections: dict[str, int], min_corrections: int,
            alpha: float) -> Verdict:  # fmt: skip
    """Agreement on every pair; accuracy and the verdict on the corrected ones."""
    corrected = [(p, corrections[p.request_id]) for p in pairs if p.request_id in corrections]
    verdict = Verdict("too_few_corrections", len(pairs), len(corrected), min_corrections, alpha)
    agree = sum(p.digits[CHAMPION] == p.digits[CHALLENGER] for p in pairs)
    verdict.agreement = _rate(agree, len(pairs), alpha)
    right = {r: [p.digits[r] == truth for p, truth in corrected] for r in ROLES}
    verdict.accuracy = {r: _rate(sum(right[r]), len(corrected), alpha) for r in ROLES}
    b = sum(ch and not cl for ch, cl in zip(right[CHAMPION], right[CHALLENGER]))
    c = sum(cl and not ch for ch, cl in zip(right[CHAMPION], right[CHALLENGER]))
    verdict.paired = {
        "champion_only": b,
        "challenger_only": c,
        "p_value": mcnemar_exact(b, c),
        **_difference(b, c, len(corrected), alpha),
    }
    verdict.answered_by = dict(Counter(p.answered_by for p, _ in corrected))
    verdict.versions = {r: dict(Counter(p.versions[r] or UNREGISTERED for p in pairs))
                        for r in ROLES}  # fmt: skip
    verdict.histograms = {r: _histogram([p.confidences[r] for p in pairs]) for r in ROLES}
    if len(corrected) >= min_corrections:
        if verdict.paired["p_value"] >= alpha:
            verdict.status = "no_difference"
        else:
            verdict.status = "better" if c > b else "worse"
    return verdict


def _difference(b: int, c: int, n: int, alpha: float) -> dict[str, object]:
    """Challenger's accuracy minus the champion's, with a Wald interval for paired data."""
    if n == 0:
        return {"difference": None, "difference_ci": None}
    d = (c - b) / n
    z = NormalDist().inv_cdf(1 - alpha / 2)
    half = z * math.sqrt(max(0.0, b + c - (c - b) ** 2 / n)) / n
    return {"difference": d, "difference_ci": (max(-1.0, d - half), min(1.0, d + half))}


def _histogram(values: list[float]) -> list[int]:
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, int(v * BINS))] += 1
    return counts
