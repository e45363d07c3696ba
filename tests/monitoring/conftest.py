"""Fixtures for the monitoring tests: counters that remember, a log factory, model answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mnist_mlops.monitoring.inference_log import InferenceLog
from mnist_mlops.monitoring.settings import MonitoringSettings
from support.logkit import SHA256, VERSION, CountingCounters


@pytest.fixture
def counters() -> CountingCounters:
    return CountingCounters()


@pytest.fixture
def make_log(tmp_path: Path, counters: CountingCounters) -> Iterator[Callable[..., InferenceLog]]:
    """Build an InferenceLog on ``tmp_path/inference`` (settings overridable); closed after."""
    made: list[InferenceLog] = []

    def make(index: Any = None, retry_s: float = 0.0, **settings: Any) -> InferenceLog:
        config = MonitoringSettings(**{"log_dir": tmp_path / "inference", **settings})
        log = InferenceLog(config, VERSION, SHA256, counters, index=index, retry_s=retry_s)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()
