"""The promotion lock between machines: a PostgreSQL advisory lock in the team's database.

    MNIST_REGISTRY_LOCK_DB=postgresql://gate@db.internal:5432/mlflow dvc repro

The file lock of :func:`mnist_mlops.registry.aliases.promotion_lock` makes movers on one
machine wait for each other; gates on two machines writing into one tracking server do
not see each other's files, and MLflow has no compare-and-set on aliases, so both compare
against the same old champion and the last write wins. With the setting, the mover also
holds a session-level ``pg_advisory_lock`` on a connection of its own for the whole read,
compare and move: every machine that reaches that database waits its turn. The lock needs
no table and no rights beyond connecting, so the MLflow server's own backend database
serves. It dies with its connection (a killed gate never leaves it held), and for that
reason the URI must reach PostgreSQL itself, not a pooler in transaction mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mnist_mlops.core.errors import UserError

log = logging.getLogger(__name__)

LOCK_DB_ENV = "MNIST_REGISTRY_LOCK_DB"
SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10  # an unreachable database is one line in seconds, not a hang
NAMESPACE = "mnist-mlops promotion"  # keeps our keys apart from other users of the database


def lock_database() -> str | None:
    """The database ``$MNIST_REGISTRY_LOCK_DB`` names, or None when it is unset or empty."""
    return os.environ.get(LOCK_DB_ENV, "").strip() or None


def lock_key(model_name: str) -> int:
    """The advisory lock's 64-bit key for ``model_name``, the same on every machine.

    Keyed by the model alone: each machine spells the tracking server its own way
    (``http://mlflow:5000``, an address, a tunnel), and a key that differed with the
    spelling would let two gates into one registry at once. The lock database already
    stands for the registry; two registries sharing it only wait for each other.
    """
    digest = hashlib.sha256(f"{NAMESPACE}\n{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def redacted(uri: str) -> str:
    """``uri`` fit for a log line: scheme, user, host, port and database, never a password
    (``user:***@``) nor the query (which may carry one as ``?password=``)."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    secret = ":***" if parts.password is not None else ""
    netloc = f"{user}{secret}@{host}" if user or secret else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@contextlib.contextmanager
def advisory_lock(database: str, model_name: str, what: str) -> Iterator[None]:
    """Hold the advisory lock for ``model_name`` in ``database`` for the ``with`` block,
    saying so in the log when it has to wait; released (and the connection closed) on exit.

    A database that cannot be reached is one :class:`UserError` line naming the setting;
    the URI is never shown with its password.
    """
    conn = _connect(database)
    key = lock_key(model_name)
    try:
        if not conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (key,)).fetchone()[0]:
            log.info("waiting for %s to finish (%s, %s)", what, LOCK_DB_ENV, redacted(database))
            conn.execute("SELECT pg_advisory_lock(%s::bigint)", (key,))
    except BaseException:  # not taken (interrupted while waiting): nothing to release
        conn.close()
        raise
    try:
        yield
    finally:
        _release(conn, key, database)


def _connect(database: str) -> Any:
    scheme, sep, _ = database.partition("://")
    if not sep or scheme not in SCHEMES:
        shown = f"not {scheme[:20]!r}" if sep else "not a URI"  # the rest may hold a password
        raise UserError(
            f"{LOCK_DB_ENV} must be a postgresql://user@host:port/database URI ({shown}); "
            "or unset it to lock on this machine only"
        )
    try:
        import psycopg
    except ImportError:
        raise UserError(
            f"{LOCK_DB_ENV} needs psycopg: pip install -e '.[team]' (or unset it)"
        ) from None
    try:
        return psycopg.connect(database, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise UserError(
            f"the registry's lock database {redacted(database)} cannot be reached "
            f"({_reason(exc)}); start it or fix {LOCK_DB_ENV} (unset: alias moves are "
            "serialised on this machine only)"
        ) from None


def _release(conn: Any, key: int, database: str) -> None:
    """Unlock and close. A connection lost on the way had already released the lock, so
    the move may have overlapped another machine's: that is worth a warning."""
    import psycopg

    try:
        held = conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (key,)).fetchone()[0]
    except psycopg.Error as exc:
        held, why = False, f"lost with its connection ({_reason(exc)})"
    else:
        why = "no longer held at the end"
    finally:
        conn.close()
    if not held:
        log.warning(
            "the promotion lock in %s was %s: another machine may have moved an alias "
            "meanwhile; check the history",
            redacted(database),
            why,
        )


def _reason(exc: Exception) -> str:
    """psycopg's cause, short: the last clause of its first line (``Connection refused``)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.rpartition("failed: ")[2].strip()[:200] or first[:200]
