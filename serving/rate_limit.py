"""A token bucket per client, in a bounded table: one busy client cannot starve the others.

Each client (its address: :mod:`serving.client_address`) gets ``rate`` tokens a second
up to ``burst``, and spends one per request; an empty bucket says how long until the
next token, for the answer's ``Retry-After``. The table keeps at most ``max_clients``
buckets, dropping the least recently used, so a flood of made-up or varied addresses
costs a bounded amount of memory (about 300 bytes a client with its key: 3 MB at the
default bound). A dropped client starts again with a full bucket, as a new one does:
eviction can only be generous, and only to a client that stayed away while
``max_clients`` others came.

Time comes from ``clock`` (``time.monotonic`` unless a test hands its own), so the
arithmetic is checked without sleeping. Not thread-safe: one per event loop (worker).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 10_000  # buckets one worker keeps; past it the least recently used goes


class TokenBucket:
    """``rate`` tokens a second up to ``burst``, starting full."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._at = float(burst), now

    def take(self, now: float) -> float:
        """Spend a token at time ``now``: 0.0 if there was one, else the seconds until
        there is (nothing is spent then)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return (1.0 - self._tokens) / self.rate
        self._tokens -= 1.0
        return 0.0


class ClientBuckets:
    """One :class:`TokenBucket` per client key, at most ``max_clients`` of them (LRU)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, not {max_clients}")
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, client: str) -> float:
        """Spend one of ``client``'s tokens: 0.0 if it had one, else the seconds until it
        has (see :meth:`TokenBucket.take`)."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.popitem(last=False)  # the least recently used
            bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(client)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, client: object) -> bool:
        return client in self._buckets
