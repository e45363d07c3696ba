"""The champion/challenger pair a request reads once: shadow scores both and the champion
answers; canary sends a stable share of keys to the challenger; settings fail in one line."""

from __future__ import annotations

import numpy as np
import pytest

from serving.model_loading import load_model
from serving.model_pair import (
    ModelPair,
    canary_answers,
    challenger_uri,
    score,
)
from support.versions import write_variant


@pytest.fixture(scope="module")
def pair(model_path, tmp_path_factory) -> ModelPair:
    other = write_variant(model_path, tmp_path_factory.mktemp("other"), seed=1)
    return ModelPair(load_model(model_path), load_model(other, role="challenger"))


def test_canary_sends_the_same_key_to_the_same_model_and_the_share_to_the_challenger():
    keys = [f"client-{i}" for i in range(4000)]
    picked = [canary_answers(k, 0.5) for k in keys]
    assert picked == [canary_answers(k, 0.5) for k in keys]  # stable, not a coin
    assert 0.45 < sum(picked) / len(keys) < 0.55
    assert not any(canary_answers(k, 0.0) for k in keys)
    assert all(canary_answers(k, 1.0) for k in keys)


def test_shadow_answers_with_the_champion_and_scores_the_challenger(pair, stroke_pixels):
    batch = np.stack([stroke_pixels, stroke_pixels[::-1]])
    scored = score(pair, batch, "shadow", 1.0, "any")
    assert scored.answered is pair.champion and scored.shadow is pair.challenger
    np.testing.assert_array_equal(scored.probabilities, pair.champion.probabilities(batch))
    # The challenger scores later, in the log's writer (tests/monitoring: score_shadows).


def test_canary_answers_with_the_model_the_key_picks_and_logs_the_other(pair, stroke_pixels):
    batch = stroke_pixels[None]
    to_challenger = next(k for k in map(str, range(100)) if canary_answers(k, 0.5))
    to_champion = next(k for k in map(str, range(100)) if not canary_answers(k, 0.5))
    scored = score(pair, batch, "canary", 0.5, to_challenger)
    assert (scored.answered.role, scored.shadow.role) == ("challenger", "champion")
    scored = score(pair, batch, "canary", 0.5, to_champion)
    assert (scored.answered.role, scored.shadow.role) == ("champion", "challenger")


def test_without_a_challenger_or_with_it_off_only_the_champion_scores(pair, stroke_pixels):
    alone = ModelPair(pair.champion)
    for mode, models in (("canary", alone), ("shadow", alone), ("off", pair)):
        scored = score(models, stroke_pixels[None], mode, 1.0, "k")
        assert scored.answered is pair.champion and scored.shadow is None


def test_the_challenger_alias_sits_beside_the_champion():
    assert challenger_uri("models:/mnist-mlp@champion") == "models:/mnist-mlp@challenger"
    assert challenger_uri("models:/mnist-mlp/3") == "models:/mnist-mlp@challenger"
