"""What a model service should report on ``/metrics``, beside BentoML's request metrics.

Created on first use, inside the worker: BentoML points ``prometheus_client`` at its
multiprocess directory during worker start-up, after the service module is imported,
so metrics made at import time would never reach ``/metrics``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from serving.model_loading import LoadedModel

# Top-probability buckets: most answers of a trained model sit above 0.9, so resolve that end.
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
# Preprocessing takes ~0.1 ms for a JSON array and a few ms for a photo.
SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


@dataclass(frozen=True)
class ServiceMetrics:
    """The service's own metric families (names prefixed ``mnist_``)."""

    predictions: Counter
    confidence: Histogram
    preprocess_seconds: Histogram
    rejected: Counter

    def observe_predictions(self, probabilities: np.ndarray) -> None:
        """Count each answered image by digit and record its top probability.

        Counted per digit and per bucket, not per image: a batch of 256 costs at most 10
        counter and 14 histogram updates, not 256 (each a write to BentoML's multiprocess
        files: observing one by one took 13 % of an .npy request's CPU, py-spy).
        """
        counts = np.bincount(probabilities.argmax(axis=1), minlength=10)
        for digit, count in enumerate(counts.tolist()):
            if count:
                self.predictions.labels(digit=str(digit)).inc(count)
        observe_many(self.confidence, probabilities.max(axis=1))

    def reject(self, reason: str) -> None:
        """Count one refused request; ``reason`` is a short fixed word (``too_large``...)."""
        self.rejected.labels(reason=reason).inc()


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for each of ``values``, one update per bucket.

    prometheus_client's public API observes one value per call, each a write to BentoML's
    multiprocess files (observing a batch one by one took 13 % of an .npy request's CPU,
    py-spy). So the values are counted per bucket here, against the bounds the histogram
    exposes (its ``le`` labels), and each bucket is added to once: the same counts and sum
    that :meth:`Histogram.observe` makes (tests/serving/test_metrics_batch.py checks the
    exposition is identical). Where the histogram's counters do not match what it exposes,
    each value is observed on its own.
    """
    counters = _bucket_counters(histogram)
    if counters is None:
        for value in values.tolist():
            histogram.observe(value)
        return
    bounds, buckets, total = counters
    # observe() puts v in the first bucket whose bound is >= v: searchsorted 'left'.
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(buckets, counts.tolist()):
        if count:
            bucket.inc(count)
    total.inc(float(values.sum(dtype=np.float64)))


@functools.cache
def _bucket_counters(histogram: Histogram) -> tuple[np.ndarray, list[Any], Any] | None:
    """The histogram's upper bounds as it exposes them (``le``, ending with +Inf), its
    per-bucket counters and its sum; None unless there is one counter per bound.

    prometheus_client has no public call that adds to a bucket, so this is the one place
    that reaches for its counters (``_buckets``, ``_sum``), checked against the public
    exposition once per histogram.
    """
    (family,) = histogram.collect()
    bounds = np.array([float(s.labels["le"]) for s in family.samples if "le" in s.labels])
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(bounds):
        return None
    return bounds, list(buckets), total


@functools.cache
def service_metrics() -> ServiceMetrics:
    """The process's metric families (registered once per process)."""
    return ServiceMetrics(
        predictions=Counter("mnist_predictions", "Images answered, by predicted digit", ["digit"]),
        confidence=Histogram(
            "mnist_confidence", "Top probability of each answer", buckets=CONFIDENCE_BUCKETS
        ),
        preprocess_seconds=Histogram(
            "mnist_preprocess_seconds",
            "Time from request body to model input, per request",
            ["source"],
            buckets=SECONDS_BUCKETS,
        ),
        rejected=Counter("mnist_rejected_requests", "Requests refused, by reason", ["reason"]),
    )


@dataclass(frozen=True)
class FollowMetrics:
    """What the registry followers report (:class:`serving.model_follow.FollowCounters`):
    moves switched to or refused, polls that could not reach the registry, and which
    version each worker serves (1) or served before (0), per role."""

    switches: Counter
    poll_failures: Counter
    model_info: Gauge

    def moved(self, role: str, outcome: str) -> None:
        self.switches.labels(role=role, outcome=outcome).inc()

    def poll_failed(self, role: str) -> None:
        self.poll_failures.labels(role=role).inc()

    def serving(self, model: LoadedModel | None, replaced: LoadedModel | None) -> None:
        if replaced is not None:
            self.model_info.labels(**_info_labels(replaced)).set(0)
        if model is not None:  # None: a retired challenger, nothing serves in its role
            self.model_info.labels(**_info_labels(model)).set(1)


def _info_labels(model: LoadedModel) -> dict[str, str]:
    return {"role": model.role, "version": model.version,
            "registry_version": model.registry_version or "", "source": model.source}  # fmt: skip


@functools.cache
def follow_metrics() -> FollowMetrics:
    """The process's follower metric families (registered once per process); every
    role x outcome starts at 0, so alert rules see a rate of 0 rather than no data."""
    from serving.model_follow import OUTCOMES
    from serving.model_loading import ROLES

    metrics = FollowMetrics(
        switches=Counter(
            "mnist_model_switches",
            "Registry alias moves this worker acted on, by role and outcome",
            ["role", "outcome"],
        ),
        poll_failures=Counter(
            "mnist_model_poll_failures",
            "Registry polls that failed (unreachable, no such alias), by role",
            ["role"],
        ),
        # One series per worker process (pid label): which model each one serves now.
        model_info=Gauge(
            "mnist_model_serving",
            "1 for the model this worker serves in each role, 0 for one it replaced",
            ["role", "version", "registry_version", "source"],
            multiprocess_mode="liveall",
        ),
    )
    for role in ROLES:
        metrics.poll_failures.labels(role=role)
        for outcome in OUTCOMES:
            metrics.switches.labels(role=role, outcome=outcome)
    return metrics
