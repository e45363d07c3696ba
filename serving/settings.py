"""The service's settings: one validated model, each default here once.

:func:`service_settings` reads them when serving/service.py is imported: BentoML takes the
service's options (workers, timeout) from its decorator then, so they cannot wait for a
worker to start. A bad value is one line naming the variable, the value and what is
allowed (:class:`~mnist_mlops.core.errors.UserError`); serving/service.py exits with that
line on stderr (status 1, no traceback) before BentoML sees a service::

    serving settings: MNIST_API_WORKERS='abc': Input should be a valid integer, ...

    MNIST_MAX_CONCURRENCY  requests past their body read, per API worker, before a 429 (64)
    MNIST_BODY_TIMEOUT_S   seconds from request headers to the last body byte before a 408 (5)
    MNIST_HEADER_TIMEOUT_S seconds from connect (or a request's first byte) to full headers (5)
    MNIST_KEEPALIVE_S      seconds a kept-alive connection may be silent between requests (75)
    MNIST_API_WORKERS      API worker processes (default 1: each holds its own session)

Which model serves (``MNIST_MODEL_PATH``...) is :mod:`serving.model_loading`'s; the inference
log's and the corrections' settings are :mod:`mnist_mlops.monitoring.settings`'.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from mnist_mlops import imaging
from mnist_mlops.monitoring.settings import settings_from_env

# Field -> environment variable: the one list of the names. A new setting is a field
# below and a line here. Reserved (the registry-following service adds them):
# MNIST_MODEL_URI, MNIST_MODEL_POLL_S, MNIST_CHALLENGER, MNIST_CANARY_SHARE,
# MNIST_CANARY_KEY_HEADER, MNIST_SMOKE_PATH, MNIST_SMOKE_MIN_ACCURACY.
ENV: dict[str, str] = {
    "api_workers": "MNIST_API_WORKERS",
    "max_in_flight": "MNIST_MAX_CONCURRENCY",
    "body_timeout_s": "MNIST_BODY_TIMEOUT_S",
    "header_timeout_s": "MNIST_HEADER_TIMEOUT_S",
    "keepalive_s": "MNIST_KEEPALIVE_S",
}
# Any request body: the largest upload (imaging.MAX_BYTES) plus multipart framing, or a
# full batch of JSON pixels (256 x 784 numbers is about 3 MB even with long decimals).
MAX_BODY_BYTES = imaging.MAX_BYTES + 1024 * 1024
DECODE_THREADS = 2  # large images decode off the event loop; few threads, few arenas
# BentoML puts every request in an OpenTelemetry span even with tracing off (sample rate
# 0): on the predict routes that cost more CPU than the model (bench/serve_load.py's CPU
# column). To trace them, override ``tracing.excluded_urls`` in BentoML's configuration.
UNTRACED_URLS = "/predict"  # a regex searched in the URL: all the /predict* routes


class ServiceSettings(BaseModel):
    """How the service runs: workers, per-request bounds and connection deadlines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_workers: PositiveInt = 1
    # Per worker; stalled clients never hold a slot (the body is read first).
    max_in_flight: PositiveInt = 64
    body_timeout_s: PositiveFloat = 5.0
    header_timeout_s: PositiveFloat = 5.0
    # Longer than a client's own idle expiry (httpx 5 s, a proxy's 60 s): serving/connections.py
    keepalive_s: PositiveFloat = 75.0

    @property
    def request_timeout_s(self) -> float:
        """BentoML's whole-request timeout (504), just above the body deadline, so a stalled
        body gets the front's 408. Keep it short: BentoML's middleware never cancels its
        per-request timer, whose copied context keeps ~10 kB of request state alive until it
        fires, so memory grows with rate x timeout."""
        return self.body_timeout_s + 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings the environment sets (unset variables keep their defaults)."""
        return settings_from_env(cls, ENV, environ)


@functools.cache
def service_settings() -> ServiceSettings:
    """This process's settings, read from its environment once."""
    return ServiceSettings.from_env()
