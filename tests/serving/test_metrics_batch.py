"""observe_many: a batch of values lands in a histogram exactly as one observe() each."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from serving.metrics import CONFIDENCE_BUCKETS, observe_many


def _samples(histogram: Histogram) -> dict[tuple[str, tuple], float]:
    (family,) = histogram.collect()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


@pytest.mark.parametrize("n", [1, 7, 256])
def test_observe_many_matches_observing_one_by_one(n):
    rng = np.random.default_rng(n)
    # Values on the bucket bounds too: observe() counts v <= bound in that bucket.
    values = np.concatenate([rng.random(n), np.array(CONFIDENCE_BUCKETS[:5])]).astype(np.float32)
    one, many = (
        Histogram("h", "h", buckets=CONFIDENCE_BUCKETS, registry=CollectorRegistry())
        for _ in range(2)
    )
    for value in values.tolist():
        one.observe(value)
    observe_many(many, values)
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key[0] == "h_created":  # when each was made
            continue
        if key[0] == "h_sum":  # summed in another order: equal to float rounding
            assert got[key] == pytest.approx(value, rel=1e-9)
        else:
            assert got[key] == value, key
    assert got[("h_count", ())] == len(values)
