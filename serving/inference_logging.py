"""The service's side of the inference log and the corrections: what is counted, and where.

Each record's route and source are handed down by the method that answered (the source
comes from the route table, :data:`serving.routes.API_ROUTES`, through the front; the /ui
page says "ui" with the ``X-Mnist-Source`` header). :func:`start_monitoring` builds the
worker's :class:`~mnist_mlops.monitoring.inference_log.InferenceLog` with its counters on
``/metrics`` and the corrections store as its request index, and the feedback desk
beside it. Settings: :mod:`mnist_mlops.monitoring.settings` (docs/monitoring.md).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.inference_log import DROP_REASONS, STAGES, InferenceLog
from mnist_mlops.monitoring.settings import MonitoringSettings
from serving.feedback import OUTCOMES, FeedbackDesk
from serving.model_pair import Scored
from serving.rate_limit import ClientBuckets

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitoringMetrics:
    """The log's and the feedback route's counters (created in the worker, like
    :func:`serving.metrics.service_metrics`); also the log's ``LogCounters``."""

    log_records: Counter
    log_dropped: Counter
    log_failures: Counter
    feedback: Counter

    def written(self, records: int) -> None:
        self.log_records.inc(records)

    def dropped(self, reason: str, records: int) -> None:
        self.log_dropped.labels(reason=reason).inc(records)

    def failed(self, stage: str) -> None:
        self.log_failures.labels(stage=stage).inc()


@functools.cache
def monitoring_metrics() -> MonitoringMetrics:
    """The process's monitoring metric families (registered once per process).

    Every label value starts at 0, so /metrics shows each series before its first event
    and alert rules see a rate of 0 rather than no data.
    """
    metrics = MonitoringMetrics(
        log_records=Counter("mnist_inference_log_records", "Records written to the inference log"),
        log_dropped=Counter(
            "mnist_inference_log_dropped_records",
            "Answered images whose record was not written, by reason",
            ["reason"],
        ),
        log_failures=Counter(
            "mnist_inference_log_failures",
            "Failed inference-log operations (write, index, retention)",
            ["stage"],
        ),
        feedback=Counter("mnist_feedback", "POST /feedback answers, by outcome", ["outcome"]),
    )
    for reason in DROP_REASONS:
        metrics.log_dropped.labels(reason=reason)
    for stage in STAGES:
        metrics.log_failures.labels(stage=stage)
    for outcome in OUTCOMES:
        metrics.feedback.labels(outcome=outcome)
    return metrics


class ServiceLog:
    """The worker's inference log as the service calls it."""

    def __init__(self, log: InferenceLog) -> None:
        self.log = log

    def record(
        self, pixels: np.ndarray, scored: Scored, route: str, source: str, request_ids: list[str]
    ) -> None:
        """Queue the answers to a request on ``route`` from ``source`` (records.SOURCES) for
        the log: the answering model's, and the other's when a second model is on (it
        scores them in the log's writer)."""
        other = scored.shadow
        self.log.record(pixels, scored.probabilities, route, source, model=scored.answered.tag,
                        shadow=other.tag if other is not None else None,
                        shadow_scorer=other.probabilities if other is not None else None,
                        request_ids=request_ids)  # fmt: skip

    def flush(self) -> None:
        """Write what is queued now (waits at most a few seconds; never on the request path)."""
        self.log.flush(timeout=5.0)

    def close(self) -> None:
        self.log.close()


def start_monitoring(
    settings: MonitoringSettings | None = None,
) -> tuple[ServiceLog, FeedbackDesk]:
    """This worker's inference log and its feedback desk.

    ``settings`` default to the environment's. Each record names the model that answered
    (a followed alias changes it while the worker runs). A bad store URI is logged and
    leaves /feedback answering 503 with the reason; serving goes on either way.
    """
    settings = settings if settings is not None else MonitoringSettings.from_env()
    metrics = monitoring_metrics()
    try:
        # Copies each accepted correction's input from the log folder (any worker's file).
        store: CorrectionsStore | None = CorrectionsStore(
            settings.feedback_uri, log_dir=settings.log_dir
        )
        # The log writer's own connection: it runs in the writer thread.
        index = CorrectionsStore(settings.feedback_uri, durable=False)
        problem = ""
    except UserError as exc:
        store, index, problem = None, None, str(exc)
        logger.error("corrections store: %s", exc)
    # Every record the service queues names its model: no default model for the log.
    log = ServiceLog(InferenceLog(settings, "", "", metrics, index=index))
    buckets = ClientBuckets(settings.feedback_rate, settings.feedback_burst)
    desk = FeedbackDesk(store, problem, buckets, settings.trusted_proxies, metrics.feedback,
                        log.flush)  # fmt: skip
    return log, desk
