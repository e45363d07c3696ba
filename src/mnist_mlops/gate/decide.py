"""The champion gate: does a new version become the ``champion``? One decision, in one place.

The field stage calls :func:`gate_scores` with the served artifact's scores; the champion
alias moves to the version only when it is at least as good as the champion on every
metric compared (MNIST test and each field set), or worse by no more than sampling noise
(:func:`noise_tolerance`), so ``models:/mnist-mlp@champion`` never moves to a model that is
worse where users are. Versions are compared on the same images: each is tagged with a
fingerprint of the sets it was scored on, and when the champion's differs from the current
one (the field sets were regenerated, corrections arrived, the preprocessing changed) the
champion is scored again on the current sets first: the artifact it serves (its
``served_*`` tags; the int8 file its run logged when it served int8), since that is what its
numbers describe. The read, the comparison and the move happen under the registry's
promotion lock, and a promotion is recorded in the registry's history like every other
alias move (:func:`mnist_mlops.registry.aliases.record_move`). Every judged version carries
the gate's word (``gate_decision``, ``gate_reason``).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_mlops.evaluation.fieldscore import SetScore
from mnist_mlops.inference.serving_choice import resolve_artifact
from mnist_mlops.registry.aliases import CHAMPION, alias_version, promotion_lock, record_move
from mnist_mlops.registry.connect import access_errors
from mnist_mlops.registry.served import fetch, resolve
from mnist_mlops.registry.versions import (
    DECISION_TAG,
    PROMOTED,
    REASON_TAG,
    REFUSED,
    SETS_TAG,
    TAG_DIGITS,
    set_tags,
    tag_metrics,
)

log = logging.getLogger(__name__)

TEST_SET = "test"  # the MNIST test split, scored as arrays beside the field sets


def metric_key(set_name: str) -> str:
    """A set's name as the registry's tags spell it: ``test_accuracy``, ``field_<set>``."""
    return "test_accuracy" if set_name == TEST_SET else f"field_{set_name}"


def gate_scores(
    tracking_uri: str,
    model_name: str,
    version: str,
    scores: dict[str, SetScore],
    *,
    sets_sha256: str,
    rescore: Callable[[Path], dict[str, float]],
    z: float,
) -> dict:
    """The field stage's gate on the served artifact's ``scores`` (by set): each set named
    once as its tag, its tolerance from its size (``field.gate_z``), and ``rescore(file)``
    (another model on exactly these images, by set) for a champion scored on other sets."""
    named = {metric_key(name): score for name, score in scores.items()}
    return promote_if_better(
        tracking_uri,
        model_name,
        version,
        {key: s.accuracy for key, s in named.items()},
        sets_sha256=sets_sha256,
        rescore=lambda path: {metric_key(k): a for k, a in rescore(path).items()},
        tolerances={k: noise_tolerance(s.accuracy, len(s.labels), z) for k, s in named.items()},
    )


def promote_if_better(
    tracking_uri: str,
    model_name: str,
    version: str,
    metrics: dict[str, float],
    sets_sha256: str | None = None,
    rescore: Callable[[Path], dict[str, float]] | None = None,
    tolerances: dict[str, float] | None = None,
) -> dict:
    """Tag ``version`` with ``metrics``; move the champion alias to it if it is at least as
    good as the champion on every one of them (a metric the champion lacks does not block),
    or worse by no more than ``tolerances[metric]``.

    ``sets_sha256`` names the images ``metrics`` were measured on. When the champion was
    scored on other images and ``rescore`` is given, ``rescore(champion's served file)``
    measures it again on these, and those numbers (tagged on the champion) are compared.
    The result (and the version's ``gate_decision`` and ``gate_reason`` tags, promoted or
    refused) says what was decided and why.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    with access_errors(tracking_uri, f"tag the versions of {model_name}"):
        tag_metrics(client, model_name, version, metrics, sets_sha256)
    with promotion_lock(tracking_uri, model_name):  # read, compare and move as one step
        return _decide(client, model_name, version, metrics, sets_sha256, rescore, tolerances)


def _decide(
    client: Any,
    model_name: str,
    version: str,
    metrics: dict[str, float],
    sets_sha256: str | None,
    rescore: Callable[[Path], dict[str, float]] | None,
    tolerances: dict[str, float] | None,
) -> dict:
    """The gate's decision against the champion as it is now (under the promotion lock)."""
    previous = alias_version(client, model_name, CHAMPION)
    current = client.get_model_version(model_name, previous) if previous is not None else None
    tags = dict(current.tags) if current is not None else {}
    rescored = (
        current is not None
        and previous != version
        and sets_sha256 is not None
        and rescore is not None
        and tags.get(SETS_TAG) != sets_sha256
    )
    if rescored:
        tags.update(_rescore_champion(client, model_name, current, rescore, sets_sha256))
    theirs = {k: float(v) for k, v in tags.items() if k in metrics}
    # Compared as tagged: the champion's tags are rounded, so an equal model is not "worse".
    mine = {k: round(v, TAG_DIGITS) for k, v in metrics.items()}
    floors = {
        k: round(v - (tolerances or {}).get(k, 0.0), TAG_DIGITS)
        for k, v in theirs.items()
        if not math.isnan(v)
    }
    worse = sorted(k for k, floor in floors.items() if mine[k] < floor)
    promote = previous == version or not worse
    reason = _reason(previous, version, worse, mine, theirs, floors)
    if promote and previous != version:
        compared = {"from": theirs, "to": mine} if previous is not None else {"to": mine}
        record_move(
            client, model_name, CHAMPION, version, action="gate", reason=reason, metrics=compared
        )
        log.info("%s v%s is the %s: %s", model_name, version, CHAMPION, reason)
    elif not promote:
        log.info("%s v%s refused, alias unchanged: %s", model_name, version, reason)
    word = {DECISION_TAG: PROMOTED if promote else REFUSED, REASON_TAG: reason}
    set_tags(client, model_name, version, word)
    return {
        "promoted": promote,
        "previous": previous,
        "previous_metrics": theirs,
        "worse_on": worse,
        "rescored_previous": rescored,
        "reason": reason,
    }


def _rescore_champion(
    client: Any,
    model_name: str,
    champion: Any,
    rescore: Callable[[Path], dict[str, float]],
    sets_sha256: str,
) -> dict[str, str]:
    """The champion's served file measured on the current sets; its new tags."""
    # The file it serves, fetched and hash-checked the one way every server fetches it.
    served = resolve(client.tracking_uri, f"models:/{model_name}/{champion.version}")
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        remeasured = rescore(resolve_artifact(fetch(client.tracking_uri, served, tmp)))
    tag_metrics(client, model_name, str(champion.version), remeasured, sets_sha256)
    log.info("%s v%s rescored on the current sets: %s", model_name, champion.version, remeasured)
    return {k: f"{v:.{TAG_DIGITS}f}" for k, v in remeasured.items()}


def _reason(
    previous: str | None,
    version: str,
    worse: list[str],
    mine: dict[str, float],
    theirs: dict[str, float],
    floors: dict[str, float],
) -> str:
    """The decision in one line for a person: which metrics lost, by how much, against what."""
    if previous is None:
        return "no champion yet"
    if previous == version:
        return "already the champion"
    if not worse:
        return (
            f"no worse than {CHAMPION} v{previous} beyond noise on "
            f"{', '.join(sorted(floors)) or 'any metric it was scored on'}"
        )
    lost = "; ".join(
        f"{k} {mine[k]:.4f} vs {theirs[k]:.4f} (lowest allowed {floors[k]:.4f})" for k in worse
    )
    return f"worse than {CHAMPION} v{previous} beyond noise on {lost}"


def noise_tolerance(accuracy: float, n: int, z: float) -> float:
    """How much lower a second model's accuracy on ``n`` images may be before it is worse
    rather than noise: ``z`` standard errors of the difference of two accuracies near
    ``accuracy`` (smoothed as (k + 2) / (n + 4), so 100 % on a small set still allows some).

    On the 10,000 MNIST test digits that is a fraction of a point; on a few hundred field
    images a few points; on a handful of corrections it is wide, and the other sets decide.
    """
    if n <= 0:
        return 0.0
    p = (accuracy * n + 2) / (n + 4)
    return z * math.sqrt(2 * p * (1 - p) / n)
