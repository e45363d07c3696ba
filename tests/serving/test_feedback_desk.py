"""The feedback desk's rate bound per client, and the 429 it answers (serving/feedback.py).

The desk here has no corrections store (the state a bad MNIST_FEEDBACK_DB leaves): a
correction that passes the bound gets that 503, one that does not gets the 429, so the
bound is seen without a database. The clock is moved by hand.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry, Counter

from mnist_mlops.monitoring.settings import ip_network
from serving.errors import ServiceError, error_response
from serving.feedback import OUTCOMES, RETRY_AFTER, FeedbackDesk
from serving.rate_limit import ClientBuckets

REQUEST_ID = "0" * 32
A, B = "203.0.113.5", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def outcomes(registry: CollectorRegistry) -> Counter:
    return Counter("feedback", "answers by outcome", ["outcome"], registry=registry)


def desk(clock: Clock, outcomes: Counter, trusted: str = "127.0.0.1") -> FeedbackDesk:
    """Burst 2, then one correction every 4 s per client; ``trusted``: the proxies."""
    buckets = ClientBuckets(rate=0.25, burst=2, clock=clock)
    proxies = [ip_network(entry) for entry in trusted.split(",") if entry]
    return FeedbackDesk(None, "no store here", buckets, proxies, outcomes, lambda: None)


def status(feedback: FeedbackDesk, peer: str, forwarded_for: str = "") -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        asyncio.run(feedback.receive(REQUEST_ID, 3, peer, forwarded_for))
    return refused.value


def test_one_client_past_its_burst_gets_429_and_another_is_still_served(clock, outcomes, registry):
    feedback = desk(clock, outcomes)
    assert [status(feedback, "127.0.0.1", A).status for _ in range(3)] == [503, 503, 429]
    assert status(feedback, "127.0.0.1", B).status == 503  # past the bound: to the store
    assert status(feedback, "127.0.0.1", A).status == 429
    counts = {o: registry.get_sample_value("feedback_total", {"outcome": o}) for o in OUTCOMES}
    assert (counts["rate_limited"], counts["unavailable"]) == (2, 3)


def test_the_429_says_in_whole_seconds_when_to_retry(clock, outcomes):
    feedback = desk(clock, outcomes)
    status(feedback, "127.0.0.1", A)
    status(feedback, "127.0.0.1", A)
    refused = status(feedback, "127.0.0.1", A)
    assert refused.headers == {RETRY_AFTER: "4"}  # one token at 0.25 a second
    assert "retry in 4 s" in refused.message
    clock.now += 2.5  # 1.5 s to go: rounded up
    assert status(feedback, "127.0.0.1", A).headers == {RETRY_AFTER: "2"}
    clock.now += 1.5
    assert status(feedback, "127.0.0.1", A).status == 503  # the token came


def test_the_429_goes_out_as_json_with_its_retry_after(clock, outcomes):
    feedback = desk(clock, outcomes)
    for _ in range(2):
        status(feedback, "127.0.0.1", A)
    refused = status(feedback, "127.0.0.1", A)
    response = error_response(refused.status, refused.message, refused.close, refused.headers)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "4"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {"error": refused.message}
    closing = error_response(413, "too large", True, {"X-Extra": "1"})
    assert (closing.headers["connection"], closing.headers["x-extra"]) == ("close", "1")
    assert "retry-after" not in error_response(400, "bad").headers


def test_without_trusted_proxies_every_claimed_address_counts_as_the_peer(clock, outcomes):
    feedback = desk(clock, outcomes, trusted="")
    claimed = [f"203.0.113.{i}" for i in range(5)]
    assert [status(feedback, "127.0.0.1", c).status for c in claimed] == [503, 503] + [429] * 3


def test_calls_without_http_share_one_bucket(clock, outcomes):
    feedback = desk(clock, outcomes)
    with pytest.raises(ServiceError):
        asyncio.run(feedback.receive(REQUEST_ID, 3))
    assert [status(feedback, "").status for _ in range(2)] == [503, 429]
