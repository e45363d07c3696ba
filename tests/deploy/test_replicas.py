"""Two replicas of the serving image behind nginx share one store and one log folder.

The replicas run as docs/replicas.md says (deploy/nginx/replicas.sh, host networking, a
port each), with the team's PostgreSQL as the corrections store and one host folder as the
inference log of both; nginx (deploy/nginx/nginx.conf) passes the client's address on and
the replicas trust it (MNIST_TRUSTED_PROXIES). What more than one replica must not break:
an answer of one replica can be corrected through the other, and the correction reaches
the export; each replica writes files of its own in the shared folder; the per-client
bound on /feedback counts the client nginx names, not nginx. Nothing sleeps to let things
happen: the tests wait on the store's index or the log, with a hang guard.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.log_reader import read_log
from mnist_mlops.monitoring.logfiles import log_files
from serving.schemas import example_pixels
from support import ROOT
from support.prometheus import query_until, rules_evaluated, run_prometheus
from support.replicas import Deployment, deployment, logged_ids, wait_indexed

pytestmark = pytest.mark.slow

BURST, RATE = 3, 0.01  # corrections per client and replica: no token comes back meanwhile
# A file of the log: inference-<UTC start>-<host>-<pid>-<token>.arrows (logfiles.py).
FILE_NAME = re.compile(r"inference-\d{8}T\d{6}\.\d{6}Z-(?P<writer>.+-\d+-[0-9a-f]+)\.arrows")


@pytest.fixture(scope="module")
def replicas(serving_image: str, team_store: str) -> Iterator[Deployment]:
    settings = {"MNIST_FEEDBACK_DB": team_store, "MNIST_TRUSTED_PROXIES": "127.0.0.1",
                "MNIST_FEEDBACK_BURST": str(BURST), "MNIST_FEEDBACK_RATE": str(RATE)}  # fmt: skip
    with deployment(serving_image, 2, settings) as served:
        yield served


def from_address(address: str, base_url: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (any 127.x.y.z is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=30)


def test_an_answer_of_one_replica_is_corrected_through_the_other(
    replicas, team_store, digit_png, tmp_path
):
    first, second = replicas.replica_urls
    files = {"image": ("seven.png", digit_png, "image/png")}
    answer = httpx.post(f"{first}/predict", files=files, timeout=30).json()
    request_id, digit = answer["request_id"], (answer["digit"] + 1) % 10
    wait_indexed(team_store, request_id)  # the first replica's writer logged it

    reply = httpx.post(f"{second}/feedback", json={"request_id": request_id, "digit": digit},
                       timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text

    store = CorrectionsStore(team_store)
    (stored,) = [row for row in store.corrections() if row.request_id == request_id]
    store.close()
    (record,) = [r for r in read_log(replicas.log_dir) if r["request_id"] == request_id]
    assert stored.digit == digit and stored.predicted == answer["digit"]
    assert stored.pixels == record["input"]  # the input copied from the other's log file
    # The export (the corrections stage) finds it in the shared store with its input.
    out = tmp_path / "corrections"
    subprocess.run(
        [sys.executable, "-m", "pipeline.corrections", str(out), "--store", team_store,
         "--log-dir", str(replicas.log_dir)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    exported = {}
    for part in ("train", "holdout"):
        with np.load(out / f"{part}.npz") as data:
            exported.update(zip(data["request_id"].tolist(), data["y"].tolist()))
    assert exported[request_id] == digit


def test_each_replica_writes_files_of_its_own_in_the_shared_folder(replicas, team_store):
    answered: dict[str, list[str]] = {}
    for url in replicas.replica_urls:
        with httpx.Client(base_url=url, timeout=30) as client:
            answered[url] = [
                client.post("/predict_array", json={"pixels": example_pixels()}).json()[
                    "request_id"
                ]
                for _ in range(5)
            ]
    for ids in answered.values():
        wait_indexed(team_store, ids[-1])  # indexed after its file was written

    files = log_files(replicas.log_dir)
    writers = [FILE_NAME.fullmatch(path.name) for path in files]
    assert all(writers), [path.name for path in files]
    assert len({m["writer"] for m in writers if m}) == len(files)  # one writer, one file
    where = {}  # request id -> the file holding it
    for path in files:
        for request_id in logged_ids(replicas.log_dir, files=[path]):
            assert request_id not in where, f"{request_id} logged twice"
            where[request_id] = path.name
    first, second = ({where[i] for i in ids} for ids in answered.values())
    assert first and second and not first & second, (first, second)


def test_the_per_client_bound_counts_the_client_nginx_names(replicas):
    """Each replica gives the client nginx names BURST corrections, then 429; another
    client behind the same nginx is still served, so the replicas did not take nginx's
    address for the client's. A header the client writes itself changes nothing."""
    body = {"request_id": "0" * 32, "digit": 1}  # never logged: 404 while tokens last
    with from_address("127.0.0.2", replicas.url) as flooder:
        statuses: list[int] = []
        while statuses[-4:] != [429] * 4:  # both replicas refusing (least_conn alternates)
            assert len(statuses) < 10 * BURST, statuses
            statuses.append(flooder.post("/feedback", json=body).status_code)
        assert statuses.count(404) == 2 * BURST, statuses  # BURST on each replica
        spoofed = flooder.post("/feedback", json=body, headers={"X-Forwarded-For": "192.0.2.9"})
        assert spoofed.status_code == 429  # nginx appended the real address: that one counts
    with from_address("127.0.0.3", replicas.url) as other:
        assert [other.post("/feedback", json=body).status_code for _ in range(2)] == [404, 404]


def test_the_page_opened_through_nginx_stays_on_nginx(replicas):
    """/ui redirects to the page at the address the browser used, port included."""
    with httpx.Client(base_url=replicas.url, follow_redirects=True, timeout=30) as browser:
        page = browser.get("/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert str(page.url) == f"{replicas.url}/ui/"


@pytest.fixture(scope="module")
def prometheus(replicas: Deployment) -> Iterator[str]:
    """A real Prometheus, one job scraping every replica, with deploy/prometheus/alerts.yml."""
    home = Path(tempfile.mkdtemp(prefix="mnist-replicas-prometheus-"))
    targets = [f"127.0.0.1:{port}" for port in replicas.ports]
    try:
        with run_prometheus(home, targets, ROOT / "deploy" / "prometheus" / "alerts.yml") as url:
            yield url
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_one_job_scrapes_every_replica_and_the_rules_sum_over_them(replicas, prometheus):
    up = query_until(prometheus, 'up{job="mnist"} == 1', lambda r: len(r) == len(replicas.ports))
    assert {s["metric"]["instance"] for s in up} == {u[7:] for u in replicas.replica_urls}
    # Counted after the first scrape, so the rate sees them increase.
    for url in replicas.replica_urls:
        reply = httpx.post(f"{url}/predict_array", json={"pixels": example_pixels()}, timeout=30)
        assert reply.status_code == 200
    # The recording rule the alerts divide by: one series for the service, not one a replica.
    (rate,) = query_until(
        prometheus, "mnist:api_requests:rate5m", lambda r: r and float(r[0]["value"][1]) > 0
    )
    assert "instance" not in rate["metric"]
    per_replica = 'count by (instance) (bentoml_service_request_total{endpoint="/predict_array"})'
    assert len(query_until(prometheus, per_replica, bool)) == len(replicas.ports)
    # Every rule of alerts.yml evaluates on the two replicas' series without an error.
    rules = rules_evaluated(prometheus)
    assert all(rule["health"] == "ok" for rule in rules), [r for r in rules if r["health"] != "ok"]
