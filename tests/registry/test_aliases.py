"""Every alias move is on the registry's record, and rollback reads that record.

The gate's promotions, its refusal (no move, no event), a person's promote over the gate's
word and a rollback: the history holds exactly the moves, with from, to, action, reason
and the metrics compared; each version carries the word of what happened to it."""

from __future__ import annotations

import pytest

from mnist_mlops.gate.decide import promote_if_better
from mnist_mlops.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    PromotionError,
    previous_champion,
    promote,
    rollback,
    set_challenger,
)
from mnist_mlops.registry.connect import RegistryError
from mnist_mlops.registry.history import read_history
from mnist_mlops.registry.versions import VersionError

pytestmark = pytest.mark.slow  # logs real MLflow models


def moves(uri: str, name: str) -> list[tuple]:
    return [
        (e.number, e.alias, e.action, e.from_version, e.to_version) for e in read_history(uri, name)
    ]


def test_gate_refuse_promote_rollback_on_the_record(store, name):
    uri, client = store.uri, store.client
    v1, v2, v3 = (store.register(name, acc) for acc in (0.95, 0.97, 0.90))
    assert promote_if_better(uri, name, v1, {"test_accuracy": 0.95})["promoted"]
    assert promote_if_better(uri, name, v2, {"test_accuracy": 0.97})["promoted"]
    refused = promote_if_better(uri, name, v3, {"test_accuracy": 0.90})
    assert not refused["promoted"]
    promote(uri, name, v3, reason="photo set relabelled; v3 is right")
    assert previous_champion(uri, name) == v2
    rollback(uri, name, reason="v3 reads thin sevens as ones")

    assert moves(uri, name) == [
        (1, CHAMPION, "gate", None, "1"),
        (2, CHAMPION, "gate", "1", "2"),
        (3, CHAMPION, "promote", "2", "3"),
        (4, CHAMPION, "rollback", "3", "2"),
    ]
    first, gate, person, back = read_history(uri, name)
    assert first.reason == "no champion yet" and first.metrics == {"to": {"test_accuracy": 0.95}}
    assert gate.reason == "no worse than champion v1 beyond noise on test_accuracy"
    assert gate.metrics == {"from": {"test_accuracy": 0.95}, "to": {"test_accuracy": 0.97}}
    assert person.reason == "photo set relabelled; v3 is right"
    assert person.metrics == {"from": {"test_accuracy": 0.97}, "to": {"test_accuracy": 0.9}}
    assert back.reason == "v3 reads thin sevens as ones"
    assert back.metrics == {"from": {"test_accuracy": 0.9}, "to": {"test_accuracy": 0.97}}
    assert all(e.user and e.command and e.time.endswith("Z") for e in (first, gate, person))
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v2

    # What the MLflow UI shows on each version: the gate's word, and how it came and went.
    tags = {v: client.get_model_version(name, v).tags for v in (v1, v2, v3)}
    assert tags[v3]["gate_decision"] == "refused"
    assert tags[v3]["became_champion"].endswith("promote by " + person.user + ": " + person.reason)
    assert tags[v3]["left_champion"].endswith(f"rollback by {back.user}: {back.reason} (to v2)")
    assert tags[v2]["became_champion"].endswith(f"rollback by {back.user}: {back.reason}")
    # The stack below v2 still holds v1: one more rollback goes there, then none is left.
    assert rollback(uri, name, reason="again").to_version == v1
    with pytest.raises(PromotionError, match="v1 is the first champion on record"):
        rollback(uri, name, reason="once more")
    assert len(read_history(uri, name)) == 5


def test_rollback_without_a_previous_champion_is_refused(store, name):
    version = store.register(name, 0.95)
    with pytest.raises(PromotionError, match="has no champion: nothing to roll back"):
        rollback(store.uri, name, reason="x")
    promote_if_better(store.uri, name, version, {"test_accuracy": 0.95})
    assert previous_champion(store.uri, name) is None
    with pytest.raises(PromotionError, match="no previous one to roll back to; promote"):
        rollback(store.uri, name, reason="x")
    assert moves(store.uri, name) == [(1, CHAMPION, "gate", None, "1")]


def test_a_champion_set_before_the_history_began_is_rolled_back_to(store, name):
    """Registries from before this record: the first event's ``from`` is the bottom."""
    old, new = store.register(name, 0.95), store.register(name, 0.96)
    store.client.set_registered_model_alias(name, CHAMPION, old)  # no event
    promote(store.uri, name, new, reason="by hand")
    assert rollback(store.uri, name, reason="back").to_version == old


def test_promote_is_refused_without_a_card_unknown_or_current(store, name):
    carded, bare = store.register(name, 0.95), store.register(name, 0.96, card=False)
    with pytest.raises(RegistryError, match=r"has no version '9' \(registered versions: 1, 2\)"):
        promote(store.uri, name, "9", reason="x")
    with pytest.raises(VersionError, match=r"v2 has no card .*re-run the export stage"):
        promote(store.uri, name, bare, reason="x")
    promote(store.uri, name, carded, reason="first")
    with pytest.raises(PromotionError, match="v1 is already the champion"):
        promote(store.uri, name, carded, reason="x")
    assert moves(store.uri, name) == [(1, CHAMPION, "promote", None, "1")]


def test_the_challenger_is_set_and_cleared_on_the_record(store, name):
    champion, other = store.register(name, 0.95), store.register(name, 0.96)
    promote(store.uri, name, champion, reason="first")
    with pytest.raises(PromotionError, match="is the champion; a challenger is another version"):
        set_challenger(store.uri, name, champion, reason="x")
    set_challenger(store.uri, name, other, reason="watch it on traffic")
    assert str(store.client.get_model_version_by_alias(name, CHALLENGER).version) == other
    set_challenger(store.uri, name, None, reason="done")
    with pytest.raises(PromotionError, match="has no challenger to clear"):
        set_challenger(store.uri, name, None, reason="x")
    assert previous_champion(store.uri, name) is None  # challenger moves are not champions
    # A challenger that becomes the champion stops being the challenger, on the record.
    set_challenger(store.uri, name, other, reason="again")
    promote(store.uri, name, other, reason="it won")
    assert moves(store.uri, name)[1:] == [
        (2, CHALLENGER, "challenger", None, "2"),
        (3, CHALLENGER, "challenger", "2", None),
        (4, CHALLENGER, "challenger", None, "2"),
        (5, CHAMPION, "promote", "1", "2"),
        (6, CHALLENGER, "challenger", "2", None),
    ]
    assert read_history(store.uri, name)[-1].reason == "v2 became the champion (promote #5)"
