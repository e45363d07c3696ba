"""The corrections store: which requests were logged, and what users said they really showed.

Two tables in a real database, safe with several worker processes: SQLite in WAL mode by
default (one file; readers never block the writer), or the team's PostgreSQL when the
URI says ``postgresql://`` (the server ``make mlflow-server`` starts; tables prefixed
``mnist_`` beside MLflow's). psycopg is imported only then (the ``team`` extra).

- ``mnist_logged_requests``: every request the inference log wrote, with its file (one
  row per request: its key, :func:`~.inference_log.request_key`; rows of logs from before
  hold one image's whole id). A correction is accepted only for these, so feedback for a
  request never logged, or whose log file retention deleted, is refused
  (``UnknownRequest``: the API's 404).
- ``mnist_corrections``: one row per image id, with the 28x28 input the model was given
  and what it answered, copied from the log file when the correction is accepted, so
  the log's retention never takes a correction's image away. The same correction again
  changes nothing; a different digit replaces the earlier one (a user who clicked wrong).

Corrections are untrusted input: stored, bounded by the API's rate limit, and they reach a
model only through the export, ``dvc repro`` and the champion gate.

    store = CorrectionsStore("sqlite:///monitoring/feedback.sqlite", Path("monitoring/inference"))
    store.add("9f2c...", 7)  # True: stored; False: the same correction was already there
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.inference_log import REQUEST_KEY_DIGITS, request_key
from mnist_mlops.monitoring.log_reader import find_inputs

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mnist_logged_requests (request_id TEXT PRIMARY KEY, "
    "log_file TEXT NOT NULL, logged_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS mnist_logged_requests_file ON mnist_logged_requests (log_file)",
    "CREATE TABLE IF NOT EXISTS mnist_corrections (request_id TEXT PRIMARY KEY, "
    "digit INTEGER NOT NULL CHECK (digit BETWEEN 0 AND 9), "
    "received_at DOUBLE PRECISION NOT NULL, input BYTEA, predicted INTEGER)",
)
# Columns later than the first tables: added to a store created before them.
ADDED_COLUMNS = (
    ("mnist_corrections", "input", "BYTEA"),
    ("mnist_corrections", "predicted", "INTEGER"),
)
# Inserted if new, replaced if the digit differs; rowcount 0 means "the same again".
UPSERT = (
    "INSERT INTO mnist_corrections (request_id, digit, received_at, input, predicted) "
    "VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (request_id) DO UPDATE SET digit = excluded.digit, "
    "received_at = excluded.received_at WHERE mnist_corrections.digit <> excluded.digit"
)
BUSY_TIMEOUT_S = 10.0  # SQLite: how long a writer waits for another worker's transaction


class UnknownRequest(UserError):
    """The request id was never logged, or its log has expired."""


class CorrectionsStore:
    """One connection (opened on first use, reopened after an error), one lock."""

    def __init__(self, uri: str, durable: bool = True, log_dir: Path | None = None) -> None:
        self.uri = uri
        # Where the accepted corrections' inputs are copied from; None: they are not.
        self.log_dir = log_dir
        self.is_postgres = uri.startswith(("postgresql://", "postgres://"))
        if not self.is_postgres and not uri.startswith("sqlite:///"):
            raise UserError(  # the scheme only: the rest may hold a password
                f"feedback store URI scheme {uri.split('://')[0][:20]!r} is not supported: "
                "use sqlite:///path/to/file.sqlite or postgresql://user@host:port/database"
            )
        # Corrections are fsynced; the request index (rewritable from the log) need not be.
        self.durable = durable
        self._conn: Any = None
        self._lock = threading.Lock()

    # ---- what the service calls ------------------------------------------------------

    def add(self, request_id: str, digit: int) -> bool:
        """Store a correction with its logged input; False if the very same one was stored
        before. UnknownRequest if no log file (still) holds the request."""
        unknown = f"request {request_id} is unknown or its log has expired"
        rows = self._run(
            "SELECT log_file FROM mnist_logged_requests WHERE request_id IN (?, ?)",
            (request_key(request_id), request_id),
        )
        if not rows:
            raise UnknownRequest(unknown)
        pixels: bytes | None = None
        predicted: int | None = None
        if self.log_dir is not None:
            try:
                found = find_inputs(self.log_dir / rows[0][0], [request_id])
            except FileNotFoundError:  # retention deleted it since the index said where
                raise UnknownRequest(unknown) from None
            if request_id not in found:  # a known request, but not an image of it
                raise UnknownRequest(unknown)
            pixels, predicted = found[request_id]
        values = (request_id, int(digit), time.time(), pixels, predicted)
        return self._run(UPSERT, values, rowcount=True) > 0

    def add_requests(self, request_ids: Sequence[str], log_file: str, when: float) -> None:
        """Remember that these requests (their keys) were written to ``log_file``."""
        self._run(
            "INSERT INTO mnist_logged_requests (request_id, log_file, logged_at) "
            "VALUES (?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
            [(request_id, log_file, when) for request_id in request_ids],
            many=True,
        )

    def forget_log_file(self, log_file: str) -> None:
        """``log_file`` is being deleted: its requests can no longer be corrected."""
        self._run("DELETE FROM mnist_logged_requests WHERE log_file = ?", (log_file,))

    # ---- what the export reads -------------------------------------------------------

    def corrections(self) -> list[StoredCorrection]:
        """Every correction, oldest first, with its input when one was copied and its log
        file while the index still has it."""
        rows = self._run(
            "SELECT c.request_id, c.digit, c.received_at, COALESCE(r.log_file, k.log_file), "
            "c.input, c.predicted FROM mnist_corrections c "
            "LEFT JOIN mnist_logged_requests r ON r.request_id = c.request_id "
            f"LEFT JOIN mnist_logged_requests k ON k.request_id = {_KEY_SQL} "
            "ORDER BY c.received_at, c.request_id"
        )
        return [
            StoredCorrection(r[0], int(r[1]), float(r[2]), r[3], _bytes(r[4]), r[5]) for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ---- the two databases -------------------------------------------------------------

    def _run(self, sql: str, params: Any = (), many: bool = False, rowcount: bool = False) -> Any:
        """Run one statement in its own transaction; reconnect next time after an error."""
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            try:
                if self.is_postgres:
                    return _run_postgres(self._conn, sql.replace("?", "%s"), params, many,
                                         rowcount)  # fmt: skip
                with self._conn:  # commits, or rolls back on error
                    cur = (self._conn.executemany if many else self._conn.execute)(sql, params)
                    return cur.rowcount if rowcount else cur.fetchall()
            except Exception:
                self._conn.close()
                self._conn = None
                raise

    def _connect(self) -> Any:
        if self.is_postgres:
            return _connect_postgres(self.uri)
        path = Path(self.uri.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        with conn:
            for statement in SCHEMA:
                conn.execute(statement)
            have = {row[1] for row in conn.execute("PRAGMA table_info(mnist_corrections)")}
            for table, column, kind in ADDED_COLUMNS:
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        return conn


def _connect_postgres(uri: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise UserError(
            "a postgresql:// feedback store needs psycopg: pip install -e '.[team]'"
        ) from None
    conn = psycopg.connect(uri, autocommit=True, connect_timeout=10)
    for attempt in range(2):  # two workers creating the tables at once: one may lose the race
        try:
            with conn.transaction():
                for statement in SCHEMA:
                    conn.execute(statement)
                for table, column, kind in ADDED_COLUMNS:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
            break
        except psycopg.errors.UniqueViolation:
            if attempt:
                raise
    return conn


def _run_postgres(conn: Any, sql: str, params: Any, many: bool, rowcount: bool) -> Any:
    with conn.transaction(), conn.cursor() as cur:
        if many:
            cur.executemany(sql, params)
            return None
        cur.execute(sql, params)
        if rowcount:
            return cur.rowcount
        return cur.fetchall() if cur.description is not None else None


class StoredCorrection(NamedTuple):
    """One row of the store as :meth:`CorrectionsStore.corrections` reads it."""

    request_id: str
    digit: int
    received_at: float  # seconds since the epoch
    log_file: str | None  # its log file while the index has it
    pixels: bytes | None  # the 784-byte input copied when accepted; None before inputs were
    predicted: int | None  # what the model answered (with the input)


# The request key of c.request_id in SQL (substr is 1-based in both databases).
_KEY_SQL = f"substr(c.request_id, 1, {REQUEST_KEY_DIGITS})"


def _bytes(value: object) -> bytes | None:
    """A BYTEA/BLOB value as bytes (psycopg gives memoryview or bytes; SQLite bytes)."""
    return None if value is None else bytes(value)  # type: ignore[call-overload]
