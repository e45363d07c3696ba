"""A real Prometheus on loopback, one job (``mnist``) scraping the targets given, and its
query API polled until the answer is there.

The metrics test scrapes one ``bentoml serve``; the replica test one job over every replica
with deploy/prometheus/alerts.yml loaded. Needs the ``prometheus`` binary (Debian package;
scripts/install_system_packages.sh).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from support.bento_process import free_port
from support.tools import need

# A hang guard: queries are retried until Prometheus (scraping every second) has the samples.
SCRAPE_HANG_S = 600


@contextlib.contextmanager
def run_prometheus(home: Path, targets: list[str], rules: Path | None = None) -> Iterator[str]:
    """Prometheus scraping ``targets`` (``host:port``) every second, evaluating ``rules``
    every second, its data and log in ``home``; its URL for the ``with`` block."""
    need("prometheus")
    listed = ", ".join(f"'{target}'" for target in targets)
    config = home / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + (f"rule_files: ['{rules}']\n" if rules is not None else "")
        + f"scrape_configs: [{{job_name: mnist, static_configs: [{{targets: [{listed}]}}]}}]\n"
    )
    port = free_port()
    with (home / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def query_until(prometheus: str, expr: str, good: Callable[[list[dict]], bool] = bool) -> list:
    """``expr``'s result once ``good(result)`` (by default: once it has samples), within
    the hang guard."""
    return _api_until(prometheus, "query", {"query": expr}, _result, good, repr(expr))


def rules_evaluated(prometheus: str) -> list[dict]:
    """Every loaded rule, once there are rules and each has been evaluated at least once,
    within the hang guard."""
    return _api_until(prometheus, "rules", {}, _rules, _all_evaluated, "rules evaluated")


def _result(data: dict) -> list[dict]:
    """A query's samples."""
    return data["result"]


def _rules(data: dict) -> list[dict]:
    """The rules of every group, in one list."""
    return [rule for group in data["groups"] for rule in group["rules"]]


def _all_evaluated(rules: list[dict]) -> bool:
    """Rules are loaded and none is still waiting for its first evaluation."""
    return bool(rules) and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)


def _api_until(
    prometheus: str,
    path: str,
    params: dict,
    pick: Callable[[dict], list],
    good: Callable[[list], bool],
    what: str,
) -> list:
    """``pick`` of the ``data`` of ``/api/v1/<path>`` once ``good`` of it; fails the test
    after :data:`SCRAPE_HANG_S`."""
    deadline = time.monotonic() + SCRAPE_HANG_S
    found: list[dict] = []
    while True:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            answer = httpx.get(f"{prometheus}/api/v1/{path}", params=params, timeout=5)
            found = pick(answer.json()["data"])
            if good(found):
                return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {SCRAPE_HANG_S} s: {found}")
        time.sleep(0.5)  # between two queries
