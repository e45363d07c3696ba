"""The corrections store: which requests were logged, and what users said they really showed.

Two tables in a real database, safe with several worker processes: SQLite in WAL mode by
default (one file; readers never block the writer), or the team's PostgreSQL when the
URI says ``postgresql://`` (the server ``make mlflow-server`` starts; tables prefixed
``mnist_`` beside MLflow's). psycopg is imported only then (the ``team`` extra).

- ``mnist_logged_requests``: every request id the inference log wrote, with its file.
  A correction is accepted only for these, so feedback for a request never logged, or
  whose log file retention deleted, is refused (``UnknownRequest``: the API's 404).
- ``mnist_corrections``: one row per request id. The same correction again changes
  nothing; a different digit replaces the earlier one (a user who clicked wrong).

Corrections are untrusted input: stored, bounded by the API's rate limit, and they reach a
model only through the export, ``dvc repro`` and the champion gate.

    store = CorrectionsStore("sqlite:///monitoring/feedback.sqlite")
    store.add("9f2c...", 7)  # True: stored; False: the same correction was already there
    load_corrections(store.uri, Path("monitoring/inference"))  # joined with the inputs
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.logfiles import read_log
from mnist_mlops.monitoring.records import decode_png

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mnist_logged_requests (request_id TEXT PRIMARY KEY, "
    "log_file TEXT NOT NULL, logged_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS mnist_logged_requests_file ON mnist_logged_requests (log_file)",
    "CREATE TABLE IF NOT EXISTS mnist_corrections (request_id TEXT PRIMARY KEY, "
    "digit INTEGER NOT NULL CHECK (digit BETWEEN 0 AND 9), "
    "received_at DOUBLE PRECISION NOT NULL)",
)
# Inserted if new, replaced if the digit differs; rowcount 0 means "the same again".
UPSERT = (
    "INSERT INTO mnist_corrections (request_id, digit, received_at) VALUES (?, ?, ?) "
    "ON CONFLICT (request_id) DO UPDATE SET digit = excluded.digit, "
    "received_at = excluded.received_at WHERE mnist_corrections.digit <> excluded.digit"
)
BUSY_TIMEOUT_S = 10.0  # SQLite: how long a writer waits for another worker's transaction


class UnknownRequest(UserError):
    """The request id was never logged, or its log has expired."""


class CorrectionsStore:
    """One connection (opened on first use, reopened after an error), one lock."""

    def __init__(self, uri: str, durable: bool = True) -> None:
        self.uri = uri
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
        """Store a correction; False if the very same one was stored before."""
        row = self._run("SELECT 1 FROM mnist_logged_requests WHERE request_id = ?", (request_id,))
        if not row:
            raise UnknownRequest(f"request {request_id} is unknown or its log has expired")
        return self._run(UPSERT, (request_id, int(digit), time.time()), rowcount=True) > 0

    def add_requests(self, request_ids: Sequence[str], log_file: str, when: float) -> None:
        """Remember that these requests were written to ``log_file``."""
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

    def corrections(self) -> list[tuple[str, int, float, str | None]]:
        """(request_id, digit, received_at, log file or None if expired), oldest first."""
        return self._run(
            "SELECT c.request_id, c.digit, c.received_at, r.log_file FROM mnist_corrections c "
            "LEFT JOIN mnist_logged_requests r ON r.request_id = c.request_id "
            "ORDER BY c.received_at, c.request_id"
        )

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


@dataclass(frozen=True)
class Correction:
    """A user's correction joined with the 28x28 input the model was given for it."""

    request_id: str
    digit: int  # what the user says the image shows
    pixels: np.ndarray  # (28, 28) uint8, white ink on black, as logged
    time: datetime  # when the correction arrived (UTC)
    predicted: int  # what the model answered


def read_corrections(store_uri: str) -> list[tuple[str, int, float, str | None]]:
    """Every row of :meth:`CorrectionsStore.corrections`, or a UserError naming the fix."""
    store = CorrectionsStore(store_uri)
    try:
        return store.corrections()
    except Exception as exc:  # sqlite3 or psycopg: unreachable, corrupt, read-only, ...
        kind = "PostgreSQL" if store.is_postgres else "SQLite"
        raise UserError(
            f"cannot read the {kind} corrections store: {type(exc).__name__}: {exc}; "
            "check MNIST_FEEDBACK_DB or --store"
        ) from None
    finally:
        store.close()


def load_corrections(
    store_uri: str, log_dir: Path, skipped: list[str] | None = None
) -> list[Correction]:
    """Every correction whose input is still in the log, oldest first.

    Request ids whose input cannot be had (log file expired, image logging off, record
    lost) are appended to ``skipped``. Only the log files that hold a correction are read.
    """
    rows = read_corrections(store_uri)
    files = sorted({Path(log_dir) / row[3] for row in rows if row[3] is not None})
    wanted = {row[0] for row in rows}
    found: dict[str, tuple[np.ndarray, int]] = {}
    for record in read_log(Path(log_dir), files=files):
        request_id, png = record["request_id"], record["input_png"]
        if request_id in wanted and isinstance(png, str):
            try:
                found[str(request_id)] = (decode_png(png), int(record["digit"]))  # type: ignore[call-overload]
            except ValueError:
                continue
    out: list[Correction] = []
    for request_id, digit, received_at, _ in rows:
        if request_id not in found:
            if skipped is not None:
                skipped.append(request_id)
            continue
        pixels, predicted = found[request_id]
        when = datetime.fromtimestamp(received_at, timezone.utc)
        out.append(Correction(request_id, int(digit), pixels, when, predicted))
    return out
