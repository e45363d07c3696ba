"""The history's record: each event fits one registered-model tag on every store, and the
champions replay as a stack (promotions push, rollbacks pop)."""

from __future__ import annotations

import json

from mnist_mlops.registry.history import MAX_CHARS, AliasEvent, champion_stack


def event(number: int, action: str, before: str | None, after: str | None, **kw) -> AliasEvent:
    fields = dict(time="2026-12-05T13:00:00Z", alias="champion", user="ana",
                  command="python -m pipeline.registry", reason="r")  # fmt: skip
    return AliasEvent(number, from_version=before, to_version=after, action=action,
                      **{**fields, **kw})  # fmt: skip


def test_an_event_round_trips_through_its_tag():
    e = event(12, "promote", "2", "3", metrics={"from": {"test_accuracy": 0.98}})
    assert e.key == "alias_history.000012"
    assert AliasEvent.from_tag(e.key, e.to_tag()) == e
    assert json.loads(e.to_tag())["from"] == "2"


def test_a_very_long_event_is_shortened_to_fit_the_stores_column():
    long = event(1, "promote", "1", "2", reason="x" * 10_000, command="y" * 10_000)
    tag = long.to_tag()
    assert len(tag) <= MAX_CHARS
    back = AliasEvent.from_tag(long.key, tag)
    assert back.reason.startswith("xxx") and back.reason.endswith("…")
    many = {"to": {f"field_{i}": 0.5 for i in range(400)}}
    assert len(event(1, "gate", None, "1", metrics=many).to_tag()) <= MAX_CHARS


def test_champions_replay_as_a_stack():
    history = [
        event(1, "gate", None, "1"),
        event(2, "gate", "1", "2"),
        event(3, "challenger", None, "4", alias="challenger"),  # another alias: ignored
        event(4, "promote", "2", "3"),
        event(5, "rollback", "3", "2"),
    ]
    assert champion_stack(history, "champion", "2") == ["1", "2"]
    assert champion_stack(history[:4], "champion", "3") == ["1", "2", "3"]
    # Moved outside these tools (the MLflow UI) to 5: the one before it is still 2.
    assert champion_stack(history, "champion", "5") == ["1", "2", "5"]
    # A champion from before the history began sits at the bottom.
    assert champion_stack([event(1, "promote", "7", "8")], "champion", "8") == ["7", "8"]
    assert champion_stack([], "champion", None) == []
