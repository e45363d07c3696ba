"""The promotion history: every move of an alias, kept in the registry itself.

MLflow keeps only where an alias points now (mlflow#2169 asks for more). Each move (the
gate's promotion, a person's promote, a rollback, a challenger set or cleared) is one
registered-model tag, ``alias_history.000012``, holding the event as JSON::

    {"time": "2026-12-05T13:40:00Z", "alias": "champion", "from": "2", "to": "3",
     "action": "promote", "user": "ana", "command": "python -m pipeline.registry promote 3 ...",
     "reason": "...", "metrics": {"from": {"test_accuracy": 0.98}, "to": {...}}}

so every client of the registry (sqlite or a server, the MLflow UI included) sees the same
record, and it goes wherever the registry goes. Numbers are decided under the promotion lock
(:mod:`.aliases`), so two movers never write the same tag. Rollback reads the history as a
stack of champions (:func:`champion_stack`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "alias_history."
DIGITS = 6  # alias_history.000012: tags sort in the UI as they happened
# A registered-model tag's value is a VARCHAR(5000) in MLflow's SQL stores (PostgreSQL and
# MySQL enforce it; the REST API would take 100,000): an event stays well below.
MAX_CHARS = 4000
CLIP = 400  # a command or reason longer than this is shortened when an event is too long
ACTIONS = ("gate", "promote", "rollback", "challenger")
PUSHES = ("gate", "promote")  # champion moves that put a version on the stack


@dataclass(frozen=True)
class AliasEvent:
    """One move of one alias: where it pointed before and after, who moved it and why."""

    number: int
    time: str  # ISO 8601, UTC
    alias: str
    from_version: str | None  # None: the alias was not set
    to_version: str | None  # None: the alias was cleared
    action: str  # one of ACTIONS
    user: str
    command: str
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)  # {"from": {...}, "to": {...}}

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.number:0{DIGITS}d}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "time": self.time,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "action": self.action,
            "user": self.user,
            "command": self.command,
            "reason": self.reason,
            "metrics": self.metrics,
        }

    def to_tag(self) -> str:
        """The tag's value: the event as JSON (without its number: that is the key),
        shortened to fit the store's column when a command or reason is very long."""
        event = self
        for attempt in range(3):
            data = event.as_dict()
            del data["number"]
            text = json.dumps(data, separators=(",", ":"), sort_keys=True)
            if len(text) <= MAX_CHARS:
                return text
            if attempt == 0:
                event = replace(event, command=_clip(event.command), reason=_clip(event.reason))
            else:
                event = replace(event, metrics={"omitted": "too long for one registry tag"})
        raise ValueError(f"history event {self.key} does not fit in {MAX_CHARS} characters")

    @classmethod
    def from_tag(cls, key: str, value: str) -> AliasEvent:
        data = json.loads(value)
        return cls(
            number=int(key[len(PREFIX) :]),
            time=str(data["time"]),
            alias=str(data["alias"]),
            from_version=_str_or_none(data.get("from")),
            to_version=_str_or_none(data.get("to")),
            action=str(data["action"]),
            user=str(data.get("user", "")),
            command=str(data.get("command", "")),
            reason=str(data.get("reason", "")),
            metrics=data.get("metrics") or {},
        )


def read_history(tracking_uri: str, model_name: str) -> list[AliasEvent]:
    """Every recorded move of ``model_name``'s aliases, oldest first."""
    from mlflow.tracking import MlflowClient

    return events(MlflowClient(tracking_uri=tracking_uri), model_name)


def events(client: Any, model_name: str) -> list[AliasEvent]:
    """The history as the registry holds it now; a tag that is not an event is skipped
    (with a warning), so one hand-edited tag does not hide the rest."""
    tags = client.get_registered_model(model_name).tags
    found = []
    for key, value in tags.items():
        if not key.startswith(PREFIX):
            continue
        try:
            found.append(AliasEvent.from_tag(key, value))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s tag %s is not a history event (%s); skipped", model_name, key, exc)
    return sorted(found, key=lambda e: e.number)


def next_number(history: list[AliasEvent]) -> int:
    """The number of the next event (call under the promotion lock)."""
    return max((e.number for e in history), default=0) + 1


def append(client: Any, model_name: str, event: AliasEvent) -> None:
    """Write ``event`` as its registered-model tag (call under the promotion lock)."""
    client.set_registered_model_tag(model_name, event.key, event.to_tag())


def champion_stack(history: list[AliasEvent], alias: str, current: str | None) -> list[str]:
    """The champions in the order they served, as a stack: a promotion (the gate's or a
    person's) pushes the new one, a rollback pops back to the one below it. A champion set
    before the history began (its first event's ``from``) is at the bottom, and one set
    outside these tools (the MLflow UI) on top, so rollback still finds the one before."""
    stack: list[str] = []
    for event in (e for e in history if e.alias == alias):
        if event.action in PUSHES and event.to_version is not None:
            if event.from_version is not None and (not stack or stack[-1] != event.from_version):
                stack.append(event.from_version)
            stack.append(event.to_version)
        elif event.action == "rollback" and stack:
            stack.pop()
            if event.to_version is not None and (not stack or stack[-1] != event.to_version):
                stack.append(event.to_version)  # rolled back to one the stack did not hold
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
