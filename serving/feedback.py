"""``POST /feedback``: a user says which digit an answered image really shows.

The body is ``{"request_id": "<32 hex digits from the answer>", "digit": 0..9}``; a
malformed body or a digit outside 0-9 is a 400 before this runs (:class:`FeedbackRequest`,
checked by the front). Here: a rate bound per client and worker (a token bucket per
client address, :mod:`serving.rate_limit`: ``MNIST_FEEDBACK_RATE`` a second, bursts of
``MNIST_FEEDBACK_BURST``; beyond, 429 with ``Retry-After``), so one client correcting in
a loop cannot starve the others; the address is the connection's peer, or what a proxy
of ``MNIST_TRUSTED_PROXIES`` says in ``X-Forwarded-For`` (:mod:`serving.client_address`).
Then the corrections store (:mod:`mnist_mlops.monitoring.corrections_store`) in a worker
thread, so a slow database never stalls the event loop. Unknown or expired ids are a
404; the same correction twice is stored once (the answer says ``duplicate``).

An answer given a moment ago may still wait in a log writer's queue (records are
written every ``FLUSH_INTERVAL_S``), and a quick click on /ui would get a 404: before
answering 404, the desk flushes this worker's log and gives the other workers' writers
two flush intervals, then looks once more.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Annotated

import anyio
import anyio.to_thread
from prometheus_client import Counter
from pydantic import BaseModel, Field

from mnist_mlops.monitoring.corrections_store import CorrectionsStore, UnknownRequest
from mnist_mlops.monitoring.inference_log import FLUSH_INTERVAL_S
from serving.client_address import Network, client_address
from serving.errors import ServiceError
from serving.rate_limit import ClientBuckets

logger = logging.getLogger(__name__)

RequestId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{32}$",
        description="the `request_id` of the answer being corrected (32 hex digits)",
        examples=["0123456789abcdef0123456789abcdef"],
    ),
]
Digit = Annotated[
    int,
    Field(strict=True, ge=0, le=9, description="the digit the image really shows", examples=[7]),
]
# How a POST /feedback ended, the label of mnist_feedback_total.
OUTCOMES = ("stored", "duplicate", "unknown", "rate_limited", "unavailable")
# Every status /feedback can answer besides 200, for the OpenAPI document.
FEEDBACK_ERROR_STATUSES = {
    400: "malformed request: bad JSON, a request_id that is not 32 hex digits, a digit outside 0-9",
    404: "no logged answer has this request_id (never logged, or its log has expired)",
    408: "the request headers or body did not arrive in time; the connection is closed",
    413: "body over the limit",
    415: "not application/json, or pickle",
    429: "too many corrections from this client (Retry-After says in how many seconds the "
    "next is accepted), or too many requests in flight; retry later",
    503: "the corrections store cannot be reached",
}
RETRY_AFTER = "Retry-After"
# Headers /feedback's errors carry, for the OpenAPI document: status -> name -> meaning.
RETRY_AFTER_MEANING = "on the rate bound's 429: whole seconds until this client may correct again"
FEEDBACK_ERROR_HEADERS = {429: {RETRY_AFTER: RETRY_AFTER_MEANING}}


class FeedbackRequest(BaseModel):
    """/feedback's body (the method's ``peer`` and ``forwarded_for`` are not inputs: the
    front sets them from the connection and its headers)."""

    request_id: RequestId
    digit: Digit


class FeedbackReceipt(BaseModel):
    """The correction as stored."""

    request_id: str
    digit: int = Field(ge=0, le=9)
    duplicate: bool = Field(
        description="true when this very correction had been stored before (kept once)"
    )


class FeedbackDesk:
    """Takes corrections for one worker: the rate bound per client, then the store.

    ``buckets`` bound each client; ``trusted_proxies`` are the peers whose X-Forwarded-For
    names the client. ``outcomes`` counts each answer by outcome; ``problem`` says why
    ``store`` is None; ``flush_log`` writes this worker's queued log records (blocking:
    run in a thread).
    """

    def __init__(
        self,
        store: CorrectionsStore | None,
        problem: str,
        buckets: ClientBuckets,
        trusted_proxies: Sequence[Network],
        outcomes: Counter,
        flush_log: Callable[[], object],
    ) -> None:
        self._store = store
        self._problem = problem
        self._buckets = buckets
        self._trusted = tuple(trusted_proxies)
        self._one_at_a_time = anyio.CapacityLimiter(1)  # the store has one connection
        self._outcomes = outcomes
        self._flush_log = flush_log

    async def receive(
        self, request_id: str, digit: int, peer: str = "", forwarded_for: str = ""
    ) -> FeedbackReceipt:
        """Store the correction; ServiceError 429, 404 or 503 when it cannot be.

        ``peer`` is the connection's address ("" for a call without HTTP: all of those
        share one bucket), ``forwarded_for`` its X-Forwarded-For header."""
        counter = self._outcomes
        wait_s = self._buckets.take(client_address(peer, forwarded_for, self._trusted))
        if wait_s > 0:
            counter.labels(outcome="rate_limited").inc()
            seconds = max(1, math.ceil(wait_s))
            raise ServiceError(
                429,
                f"too many corrections from your address; retry in {seconds} s",
                headers={RETRY_AFTER: str(seconds)},
            )
        if self._store is None:
            counter.labels(outcome="unavailable").inc()
            raise ServiceError(503, f"the corrections store is not available: {self._problem}")
        try:
            try:
                stored = await self._add(request_id, digit)
            except UnknownRequest:  # perhaps not written yet: see the module docstring
                await anyio.to_thread.run_sync(self._flush_log)
                await anyio.sleep(2 * FLUSH_INTERVAL_S)
                stored = await self._add(request_id, digit)
        except UnknownRequest as exc:
            counter.labels(outcome="unknown").inc()
            raise ServiceError(404, str(exc)) from None
        except Exception as exc:  # the database is down, locked too long, full...
            counter.labels(outcome="unavailable").inc()
            logger.warning("corrections store failed: %s", exc)  # not to the client: may name hosts
            raise ServiceError(503, "the corrections store failed; retry later") from None
        counter.labels(outcome="stored" if stored else "duplicate").inc()
        return FeedbackReceipt(request_id=request_id, digit=digit, duplicate=not stored)

    async def _add(self, request_id: str, digit: int) -> bool:
        assert self._store is not None
        return await anyio.to_thread.run_sync(
            self._store.add, request_id, digit, limiter=self._one_at_a_time
        )
