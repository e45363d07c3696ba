"""POST /feedback's rate bound is per client, through a real ``bentoml serve`` on loopback.

The server trusts 127.0.0.1 as its proxy (``MNIST_TRUSTED_PROXIES``), so the test plays
nginx: each request says in X-Forwarded-For which client it carries. One worker, so one
bucket table; a burst of 3 and one token every 100 s, so nothing refills during the test.
Client A floods until the 429 (with ``Retry-After`` and the JSON error); client B is still
served and its correction is in the store. Without a trusted proxy the same header buys
nothing: test_monitoring_http.py's flood sends a new one each time and still meets 429.
Nothing sleeps to let things happen: the tests poll the log for what they wait for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.log_reader import read_log
from serving.schemas import example_pixels
from support.bento_process import serving

pytestmark = pytest.mark.slow

BURST, RATE = 3, 0.01  # one token every 100 s: none comes back during the test
A = {"X-Forwarded-For": "203.0.113.5"}
B = {"X-Forwarded-For": "198.51.100.7"}
WAIT_S = 60  # for the log writer (it writes every 0.2 s) on a loaded machine


@dataclass(frozen=True)
class Proxied:
    """A running service behind a (pretend) trusted proxy, and its log folder and store."""

    url: str
    log_dir: Path
    store_uri: str


@pytest.fixture(scope="module")
def proxied(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    home = tmp_path_factory.mktemp("proxied")
    store_uri = f"sqlite:///{home / 'feedback.sqlite'}"
    env = {"MNIST_API_WORKERS": "1", "MNIST_TRUSTED_PROXIES": "127.0.0.1",
           "MNIST_FEEDBACK_RATE": str(RATE), "MNIST_FEEDBACK_BURST": str(BURST),
           "MNIST_INFERENCE_LOG_DIR": str(home / "inference"),
           "MNIST_FEEDBACK_DB": store_uri}  # fmt: skip
    with serving(model_path, home / "bentoml", **env) as server:
        yield Proxied(server.url, home / "inference", store_uri)


def logged_request_id(client: httpx.Client, log_dir: Path) -> str:
    """A fresh answer's request id, once its record is in the log (so it can be corrected)."""
    request_id = client.post("/predict_array", json={"pixels": example_pixels()}).json()[
        "request_id"
    ]
    deadline = time.monotonic() + WAIT_S
    while request_id not in {record["request_id"] for record in read_log(log_dir)}:
        if time.monotonic() > deadline:
            pytest.fail(f"{request_id} was not logged within {WAIT_S} s")
        time.sleep(0.2)
    return request_id


def test_one_client_s_flood_is_refused_and_another_client_is_served(proxied):
    with httpx.Client(base_url=proxied.url, timeout=30) as client:
        statuses, refused = [], None
        for i in range(10 * BURST):  # A floods until refused; unknown ids spend tokens too
            answer = client.post("/feedback", json={"request_id": f"{i:032x}", "digit": 1},
                                 headers=A)  # fmt: skip
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                refused = answer
                break
        assert statuses == [404] * BURST + [429]
        assert refused is not None
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 1 / RATE
        assert refused.headers["content-type"] == "application/json"
        assert "too many corrections" in refused.json()["error"]

        request_id = logged_request_id(client, proxied.log_dir)
        served = client.post("/feedback", json={"request_id": request_id, "digit": 6}, headers=B)
        assert served.status_code == 200, served.text
        assert served.json() == {"request_id": request_id, "digit": 6, "duplicate": False}

        # A is still over its bound: B's correction gave A nothing
        again = client.post("/feedback", json={"request_id": request_id, "digit": 5}, headers=A)
        assert again.status_code == 429
    stored = CorrectionsStore(proxied.store_uri).corrections()
    assert [row.digit for row in stored if row.request_id == request_id] == [6]


def test_what_a_client_writes_left_of_the_proxy_s_entry_buys_nothing(proxied):
    # The proxy appends the address it saw (192.0.2.44); whatever the client wrote to its
    # left is made up and ignored: every request is the one client's, which meets its bound.
    with httpx.Client(base_url=proxied.url, timeout=30) as client:
        statuses = []
        for i in range(BURST + 3):
            headers = {"X-Forwarded-For": f"198.51.100.{i}, junk-{i}, 192.0.2.44"}
            answer = client.post("/feedback", json={"request_id": f"{i:032x}", "digit": 1},
                                 headers=headers)  # fmt: skip
            statuses.append(answer.status_code)
    assert statuses == [404] * BURST + [429] * 3
