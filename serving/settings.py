"""The service's settings: one validated model, each default here once.

:func:`service_settings` reads them when serving/service.py is imported: BentoML takes the
service's options (workers, timeout) from its decorator then, so they cannot wait for a
worker to start. A bad value, here or in the monitoring settings, is one line naming the
variable, the value and what is allowed (:class:`~mnist_mlops.core.errors.UserError`);
serving/service.py exits with that line on stderr (status 1, no traceback) before BentoML
sees a service::

    serving settings: MNIST_API_WORKERS='abc': Input should be a valid integer, ...

    MNIST_MAX_CONCURRENCY  requests past their body read, per API worker, before a 429 (64)
    MNIST_BODY_TIMEOUT_S   seconds from request headers to the last body byte before a 408 (5)
    MNIST_HEADER_TIMEOUT_S seconds from connect (or a request's first byte) to full headers (5)
    MNIST_KEEPALIVE_S      seconds a kept-alive connection may be silent between requests (75)
    MNIST_API_WORKERS      API worker processes (default 1: each holds its own session)
    MNIST_MODEL_POLL_S     seconds between a worker's registry checks with MNIST_MODEL_URI (10)
    MNIST_CHALLENGER       off|shadow|canary: what the registry's challenger does (off)
    MNIST_CANARY_SHARE     in canary mode, the share of keys the challenger answers (0.1)
    MNIST_CANARY_KEY_HEADER  the header whose value picks a canary's model (X-Client-Id;
                           absent: the request id)
    MNIST_SMOKE_PATH       digits with known answers a followed version must pass
                           (models/champion/smoke.npz)
    MNIST_SMOKE_MIN_ACCURACY  ... and the share of them it must answer right (0.95)

Which model serves (``MNIST_MODEL_PATH``, ``MNIST_MODEL_URI``...) is
:mod:`serving.model_loading`'s; following and the challenger :mod:`serving.model_pair`'s; the
inference log's and the corrections' settings are :mod:`mnist_mlops.monitoring.settings`'.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from mnist_mlops import imaging
from mnist_mlops.monitoring.settings import MonitoringSettings, settings_from_env

# Field -> environment variable: the one list of the names. A new setting is a field
# below and a line here.
ENV: dict[str, str] = {
    "api_workers": "MNIST_API_WORKERS",
    "max_in_flight": "MNIST_MAX_CONCURRENCY",
    "body_timeout_s": "MNIST_BODY_TIMEOUT_S",
    "header_timeout_s": "MNIST_HEADER_TIMEOUT_S",
    "keepalive_s": "MNIST_KEEPALIVE_S",
    "poll_s": "MNIST_MODEL_POLL_S",
    "challenger": "MNIST_CHALLENGER",
    "canary_share": "MNIST_CANARY_SHARE",
    "canary_key_header": "MNIST_CANARY_KEY_HEADER",
    "smoke_path": "MNIST_SMOKE_PATH",
    "smoke_min_accuracy": "MNIST_SMOKE_MIN_ACCURACY",
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
    # Following the registry (MNIST_MODEL_URI) and the challenger: serving/model_pair.py.
    poll_s: PositiveFloat = 10.0
    challenger: Literal["off", "shadow", "canary"] = "off"
    canary_share: float = Field(0.1, ge=0, le=1)
    canary_key_header: str = Field("X-Client-Id", min_length=1)
    # MNIST test digits with their labels, written by `dvc repro champion`.
    smoke_path: Path = Path("models/champion/smoke.npz")
    smoke_min_accuracy: float = Field(0.95, ge=0, le=1)

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
    """This process's settings, read from its environment once. The monitoring settings
    are checked here too: each worker reads them again when it starts, where a bad one
    would be a traceback and a worker BentoML restarts for ever instead of one line."""
    MonitoringSettings.from_env()
    return ServiceSettings.from_env()
