"""The inference log's folder: one JSON-lines file per writer at a time, rotated, bounded, read.

Why files of our own rather than one shared file: several API worker processes write at
once, and lines from two processes appended to one file can interleave. Each writer
(one per worker process) appends only to its own file, named by its start time and
pid, and holds an exclusive ``flock`` on it, so the retention sweep of any worker
deletes only files nobody is writing (``flock`` is advisory: this folder is ours).

Bounds: a file is closed past ``rotate_bytes``; the sweep deletes files last written
more than ``retention_s`` ago, then the oldest closed files until the folder is under
``max_bytes``. A write that fails (disk full) is cut back off the file, so what a
failure leaves is exactly the records counted as written; the next write starts a new
file. A line cut short anyway (a crash) is skipped and counted by :func:`read_log`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mnist_mlops.monitoring.records import parse_record

PATTERN = "inference-*.jsonl"


def log_files(folder: Path) -> list[Path]:
    """The folder's log files, oldest first (names start with the UTC start time)."""
    return sorted(folder.glob(PATTERN)) if folder.is_dir() else []


class LogFile:
    """The file this writer appends to now; a new one after rotation or a failure."""

    def __init__(self, folder: Path, rotate_bytes: int) -> None:
        self.folder = folder
        self.rotate_bytes = rotate_bytes
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0

    def append(self, data: bytes) -> Path:
        """Append whole lines; return the file they went to.

        On OSError none of ``data`` stays in the file and no file is left open.
        """
        if self._fd is not None and self._size and self._size + len(data) > self.rotate_bytes:
            self.close()
        if self._fd is None:
            self._open()
        assert self._fd is not None and self.path is not None
        fresh = self._size == 0
        try:
            view = memoryview(data)
            while view:  # a regular file may take fewer bytes than offered (disk filling up)
                view = view[os.write(self._fd, view) :]
        except OSError:
            path = self.path
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # frees the space a partial write took
            self.close()
            if fresh:  # nothing of value in it: do not leave empty files behind failures
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        self._size += len(data)
        return self.path

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.folder / f"inference-{stamp}-{os.getpid()}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: nobody else holds it
        self._fd, self.path, self._size = fd, path, 0

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # also releases the flock
        self._fd, self.path, self._size = None, None, 0


def sweep(
    folder: Path, max_bytes: int, retention_s: float, forget: Callable[[str], None]
) -> list[str]:
    """Delete expired files, then the oldest until under ``max_bytes``; return their names.

    ``forget(name)`` runs before each deletion (the corrections store stops accepting
    feedback for the requests in it); it must not raise, so that a failing store never
    stops retention. Files another writer holds are skipped, and so are files another
    worker's sweep deleted first.
    """
    files = [(p, st) for p in log_files(folder) if (st := _stat(p)) is not None]
    total = sum(st.st_size for _, st in files)
    now = time.time()
    deleted: list[str] = []
    for path, st in files:
        if now - st.st_mtime <= retention_s and total <= max_bytes:
            continue
        if _delete_unless_held(path, forget):
            total -= st.st_size
            deleted.append(path.name)
    return deleted


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _delete_unless_held(path: Path, forget: Callable[[str], None]) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # another worker's sweep got there first
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # a live writer's current file
        os.close(fd)
        return False
    try:
        forget(path.name)
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


@dataclass
class ReadCounts:
    """What :func:`read_log` met: whole records, and lines it skipped as corrupt."""

    records: int = 0
    corrupt: int = 0  # not JSON, not a whole record, or cut short (no final newline)


def read_log(
    folder: Path, counts: ReadCounts | None = None, files: list[Path] | None = None
) -> Iterator[dict[str, object]]:
    """Every whole record in the folder (or in ``files``), oldest file first.

    Corrupt or half-written lines are skipped and counted in ``counts``; a file deleted
    by retention while being listed is skipped.
    """
    counts = counts if counts is not None else ReadCounts()
    for path in log_files(folder) if files is None else files:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue
        with handle:
            for raw in handle:
                record = None
                if raw.endswith(b"\n"):
                    record = parse_record(raw.decode("utf-8", "replace"))
                if record is None:
                    counts.corrupt += 1
                    continue
                counts.records += 1
                yield record
