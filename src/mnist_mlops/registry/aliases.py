"""Moving the ``champion`` and ``challenger`` aliases: one way, under one lock, on the record.

Every move goes through :func:`record_move` while the caller holds :func:`promotion_lock`:
the champion gate (``mnist_mlops.gate.decide``), a person's :func:`promote`, a
:func:`rollback` and :func:`set_challenger` alike. It moves the alias, appends one event to
the history (:mod:`.history`) and writes the word of the move on both versions
(``became_<alias>``, ``left_<alias>``), so the MLflow UI says on each version when and why it
became or stopped being the champion. A following service sees the alias move on its
next look.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnist_mlops.core.locks import cache_folder, flock, sqlite_path
from mnist_mlops.core.pause import pause_here
from mnist_mlops.registry import history
from mnist_mlops.registry.connect import RegistryError, access_errors, connect, get_version
from mnist_mlops.registry.history import AliasEvent
from mnist_mlops.registry.shared_lock import advisory_lock, lock_database
from mnist_mlops.registry.versions import metric_tags, served_card

CHAMPION = "champion"
CHALLENGER = "challenger"
NUMBERED = "history-numbered"  # the pause point between numbering an event and writing it


class PromotionError(RegistryError):
    """A move that is refused: one line, naming the fix."""


@contextlib.contextmanager
def promotion_lock(tracking_uri: str, model_name: str) -> Iterator[None]:
    """Serialise alias moves for ``model_name`` in one store, on this machine and, with
    ``$MNIST_REGISTRY_LOCK_DB``, across machines.

    The gate reads the champion, compares and moves the alias; MLflow has no
    compare-and-set, so two gates that interleave (``dvc queue start --jobs 2``) both
    compare against the old champion and the last write wins, or the first alias insert
    fails on a duplicate key; two movers would also number their history events alike.
    The file lock sits beside a sqlite store (so it also covers machines sharing it over a
    file system) and, for a server, in the user's cache folder, keyed by server and model:
    processes on one machine wait for each other there, cheaply. Movers on different
    machines writing into one server also wait for each other only when the setting names
    the team's PostgreSQL, whose advisory lock is then held inside the file lock
    (:mod:`.shared_lock`; docs/registry.md).
    """
    db = sqlite_path(tracking_uri)
    store = str(db.resolve()) if db is not None else tracking_uri
    key = hashlib.sha256(f"{store}\n{model_name}".encode()).hexdigest()[:16]
    folder = db.parent if db is not None else cache_folder()
    what = f"another champion decision for {model_name}"
    shared = lock_database()
    across = (
        advisory_lock(shared, model_name, what=f"{what} on another machine")
        if shared is not None
        else contextlib.nullcontext()
    )
    refusals = access_errors(tracking_uri, f"move the aliases of {model_name}")
    with flock(folder / f"promote-{key}.lock", what=what), across, refusals:
        yield


def alias_version(client: Any, model_name: str, alias: str) -> str | None:
    """The version ``alias`` names now, or None when it is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def record_move(
    client: Any,
    model_name: str,
    alias: str,
    version: str | None,
    *,
    action: str,
    reason: str,
    metrics: dict[str, Any] | None = None,
) -> AliasEvent:
    """Point ``alias`` at ``version`` (None clears it) and record the move; the caller
    holds :func:`promotion_lock` (the history's next number is decided here)."""
    if action not in history.ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {history.ACTIONS}")
    before = alias_version(client, model_name, alias)
    event = AliasEvent(
        number=history.next_number(history.events(client, model_name)),
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        alias=alias,
        from_version=before,
        to_version=version,
        action=action,
        user=_user(),
        command=_command(),
        reason=reason,
        metrics=metrics if metrics is not None else _compared(client, model_name, before, version),
    )
    pause_here(NUMBERED)  # tests hold a mover here to prove a second one waits
    if version is None:
        client.delete_registered_model_alias(model_name, alias)
    else:
        client.set_registered_model_alias(model_name, alias, version)
    history.append(client, model_name, event)
    word = f"{event.time} {action} by {event.user}: {reason}"
    if version is not None:
        client.set_model_version_tag(model_name, version, f"became_{alias}", word)
    if before is not None and before != version:
        to = f"v{version}" if version is not None else "nothing"
        client.set_model_version_tag(model_name, before, f"left_{alias}", f"{word} (to {to})")
    won = alias == CHAMPION and version is not None
    if won and alias_version(client, model_name, CHALLENGER) == version:  # not both at once
        why = f"v{version} became the {CHAMPION} ({action} #{event.number})"
        record_move(client, model_name, CHALLENGER, None, action="challenger", reason=why)
    return event


def move_alias(
    tracking_uri: str,
    model_name: str,
    alias: str,
    version: str | None,
    *,
    action: str,
    reason: str,
    metrics: dict[str, Any] | None = None,
) -> AliasEvent:
    """:func:`record_move` under the promotion lock."""
    client = connect(tracking_uri, model_name)
    with promotion_lock(tracking_uri, model_name):
        return record_move(
            client, model_name, alias, version, action=action, reason=reason, metrics=metrics
        )


def promote(tracking_uri: str, model_name: str, version: str, *, reason: str) -> AliasEvent:
    """A person makes ``version`` the champion, over the gate's word if need be: refused for
    a version that is unknown, already the champion, or has no card matching its hash."""
    client = connect(tracking_uri, model_name)
    with promotion_lock(tracking_uri, model_name):
        served_card(client, model_name, get_version(client, model_name, version))
        if alias_version(client, model_name, CHAMPION) == version:
            raise PromotionError(f"{model_name} v{version} is already the {CHAMPION}")
        return record_move(client, model_name, CHAMPION, version, action="promote", reason=reason)


def previous_champion(tracking_uri: str, model_name: str) -> str | None:
    """The champion before the current one, as a rollback would restore it; None if none."""
    client = connect(tracking_uri, model_name)
    return _previous(client, model_name, alias_version(client, model_name, CHAMPION))


def rollback(tracking_uri: str, model_name: str, *, reason: str) -> AliasEvent:
    """Back to the previous champion (the history read as a stack); refused when there is
    no champion or none before it, or its card no longer matches."""
    client = connect(tracking_uri, model_name)
    with promotion_lock(tracking_uri, model_name):
        current = alias_version(client, model_name, CHAMPION)
        if current is None:
            raise PromotionError(f"{model_name} has no {CHAMPION}: nothing to roll back")
        previous = _previous(client, model_name, current)
        if previous is None:
            raise PromotionError(
                f"{model_name} v{current} is the first {CHAMPION} on record: no previous one "
                "to roll back to; promote a version instead (python -m pipeline.registry "
                "promote VERSION --reason ...)"
            )
        served_card(client, model_name, get_version(client, model_name, previous))
        return record_move(client, model_name, CHAMPION, previous, action="rollback", reason=reason)


def set_challenger(
    tracking_uri: str, model_name: str, version: str | None, *, reason: str
) -> AliasEvent:
    """Point ``challenger`` at ``version`` (its card checked), or clear it (None)."""
    client = connect(tracking_uri, model_name)
    with promotion_lock(tracking_uri, model_name):
        current = alias_version(client, model_name, CHALLENGER)
        if version is None and current is None:
            raise PromotionError(f"{model_name} has no {CHALLENGER} to clear")
        if version is not None:
            served_card(client, model_name, get_version(client, model_name, version))
            if alias_version(client, model_name, CHAMPION) == version:
                raise PromotionError(
                    f"{model_name} v{version} is the {CHAMPION}; a {CHALLENGER} is another version"
                )
        return record_move(
            client, model_name, CHALLENGER, version, action="challenger", reason=reason
        )


def _previous(client: Any, model_name: str, current: str | None) -> str | None:
    stack = history.champion_stack(history.events(client, model_name), CHAMPION, current)
    return stack[-2] if len(stack) >= 2 else None


def _compared(
    client: Any, model_name: str, before: str | None, after: str | None
) -> dict[str, dict[str, float]]:
    """Both versions' gate metrics as tagged: what the person traded for what."""
    return {
        side: metric_tags(dict(client.get_model_version(model_name, v).tags))
        for side, v in (("from", before), ("to", after))
        if v is not None
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _command() -> str:
    """How this process was started, as a person would type it: ``python -m pipeline.field
    ...`` for a module, else the script's name and its arguments."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = f"python -m {spec.name}" if spec is not None else Path(sys.argv[0]).name
    return " ".join([head, shlex.join(sys.argv[1:])]).strip()
