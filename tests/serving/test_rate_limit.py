"""A token bucket per client, in a table of bounded size (serving/rate_limit.py).

Time is a clock the test moves by hand, so each number is exact and nothing sleeps.
"""

from __future__ import annotations

import pytest

from serving.rate_limit import MAX_CLIENTS, ClientBuckets


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_client_gets_its_burst_then_is_told_how_long_to_wait(clock):
    buckets = ClientBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    clock.now += 0.2
    assert buckets.take("a") == pytest.approx(0.3)  # a refusal spends nothing


def test_one_client_s_flood_leaves_every_other_client_its_whole_burst(clock):
    buckets = ClientBuckets(rate=2.0, burst=3, clock=clock)
    for _ in range(50):
        buckets.take("203.0.113.5")
    assert [buckets.take("198.51.100.7") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("198.51.100.7") > 0 and buckets.take("203.0.113.5") > 0


def test_tokens_come_back_at_the_rate_up_to_the_burst(clock):
    buckets = ClientBuckets(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        buckets.take("a")
    clock.now += 0.5  # one token
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.5]
    clock.now += 60  # 120 tokens' worth, capped at the burst
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_a_slow_rate_waits_long(clock):
    buckets = ClientBuckets(rate=0.01, burst=1, clock=clock)
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(100.0)
    clock.now += 99.5
    assert buckets.take("a") == pytest.approx(0.5)


def test_the_table_keeps_the_most_recently_seen_clients(clock):
    buckets = ClientBuckets(rate=1.0, burst=2, max_clients=2, clock=clock)
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")  # a is now the more recent
    buckets.take("c")  # over the bound: b, the least recently used, goes
    assert len(buckets) == 2
    assert "a" in buckets and "c" in buckets and "b" not in buckets


def test_an_evicted_client_starts_again_with_a_full_bucket(clock):
    buckets = ClientBuckets(rate=1.0, burst=2, max_clients=2, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]  # a is empty
    buckets.take("b")
    buckets.take("c")  # a goes
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]  # as if new


def test_a_flood_of_addresses_never_grows_the_table_past_its_bound(clock):
    buckets = ClientBuckets(rate=1.0, burst=1, max_clients=100, clock=clock)
    for i in range(5000):
        assert buckets.take(f"2001:db8::{i:x}") == 0.0  # each new one is a new client
    assert len(buckets) == 100
    assert "2001:db8::1387" in buckets and "2001:db8::0" not in buckets  # the last 100 stay


def test_the_default_bound_and_a_bad_one():
    assert ClientBuckets(rate=1.0, burst=1).max_clients == MAX_CLIENTS == 10_000
    with pytest.raises(ValueError, match="at least 1"):
        ClientBuckets(rate=1.0, burst=1, max_clients=0)
