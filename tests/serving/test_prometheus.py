"""A real Prometheus server scrapes a real ``bentoml serve`` on loopback: the metrics a user
of a model service expects are there, with the labels and counts the requests produced.

Needs the ``prometheus`` binary (Debian package; scripts/install_system_packages.sh).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.bento_process import serving
from support.prometheus import query_until, run_prometheus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prometheus_url(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory, digit_png: bytes
) -> Iterator[tuple[str, str]]:
    """(Prometheus URL, service URL): the service answered a few requests first."""
    home = tmp_path_factory.mktemp("prometheus")
    with serving(model_path, home / "bentoml") as served:
        client = httpx.Client(base_url=served.url, timeout=30)
        for _ in range(3):
            client.post("/predict", files={"image": ("d.png", digit_png, "image/png")})
        client.post("/predict_array", json={"pixels": [1, 2, 3]})  # 400
        client.post("/predict", content=b"x", headers={"content-type": "image/png"})  # 415
        target = served.url.removeprefix("http://")
        with run_prometheus(home, [target]) as prometheus:
            yield prometheus, served.url


def test_scrape_target_is_up(prometheus_url):
    prometheus, _ = prometheus_url
    (up,) = query_until(prometheus, 'up{job="mnist"}')
    assert up["value"][1] == "1"


def test_predictions_are_counted_by_digit(prometheus_url):
    prometheus, _ = prometheus_url
    result = query_until(prometheus, "mnist_predictions_total")
    assert {r["metric"]["digit"] for r in result} <= {str(d) for d in range(10)}
    assert sum(float(r["value"][1]) for r in result) == 3


def test_confidence_and_preprocessing_histograms(prometheus_url):
    prometheus, _ = prometheus_url
    (confidence,) = query_until(prometheus, "mnist_confidence_count")
    assert float(confidence["value"][1]) == 3
    (inf_bucket,) = query_until(prometheus, 'mnist_confidence_bucket{le="+Inf"}')
    assert float(inf_bucket["value"][1]) == 3
    (image,) = query_until(prometheus, 'mnist_preprocess_seconds_count{source="image"}')
    assert float(image["value"][1]) == 3


def test_rejections_are_counted_by_reason(prometheus_url):
    prometheus, _ = prometheus_url
    result = query_until(prometheus, "mnist_rejected_requests_total")
    by_reason = {r["metric"]["reason"]: float(r["value"][1]) for r in result}
    assert by_reason == {"malformed": 1, "unsupported_media_type": 1}
