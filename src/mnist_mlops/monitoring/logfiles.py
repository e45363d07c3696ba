"""The inference log's folder: one Arrow IPC stream per writer at a time, rotated, bounded.

Why files of our own rather than one shared file: several API worker processes (and
replicas sharing a volume) write at once, and appends from two processes to one file can
interleave. Each writer appends only to its own file, named by its start time, host, pid
and a random token, and created exclusively (``O_EXCL``): two containers on one volume can
share a pid, and with host networking podman gives them the host's name too, so neither
name part alone is unique across replicas. It holds an
exclusive ``flock`` on it, so the retention sweep of any worker deletes only files nobody
is writing (``flock`` is advisory: this folder is ours).

A file is an Arrow IPC *stream* (``.arrows``): the schema, then one record batch per write
(:func:`encode_batch`), with no end marker, so it can be appended to and read while it
grows; a reader stops at a batch cut short (a crash, or a write in flight). Files written
before this format (``.jsonl``, one JSON object per line) are still read
(:mod:`.log_reader`) and retention treats them alike.

Bounds: a file is closed past ``rotate_bytes``; the sweep deletes files last written
more than ``retention_s`` ago, then the oldest closed files until the folder is under
``max_bytes``. A write that fails (disk full) is cut back off the file, so what a
failure leaves is exactly the records counted as written; the next write starts a new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from mnist_mlops.monitoring.records import LOG_SCHEMA

SUFFIX = ".arrows"  # Arrow IPC stream, the format written now
LEGACY_SUFFIX = ".jsonl"  # JSON lines, written before: read, never written
PATTERNS = (f"inference-*{SUFFIX}", f"inference-*{LEGACY_SUFFIX}")
STAMP = "%Y%m%dT%H%M%S.%fZ"  # the start time in a file's name


def log_files(folder: Path) -> list[Path]:
    """The folder's log files of both formats, oldest first (names start with the UTC start
    time)."""
    if not folder.is_dir():
        return []
    return sorted({path for pattern in PATTERNS for path in folder.glob(pattern)})


def started_at(path: Path) -> datetime | None:
    """When the file was started, from its name; None for a name not of this log."""
    match = re.match(r"inference-(\d{8}T\d{6}\.\d{6}Z)-", path.name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), STAMP).replace(tzinfo=timezone.utc)


@functools.cache
def stream_header() -> bytes:
    """What starts every log file: the IPC stream's schema message."""
    return LOG_SCHEMA.serialize().to_pybytes()


def encode_batch(batch: pa.RecordBatch, compression: str = "zstd") -> bytes:
    """``batch`` as the IPC message that follows :func:`stream_header` in a file.

    ``compression`` (MonitoringSettings.log_compression) compresses each column's
    buffers: zstd keeps a digit's row near 200 bytes against 860 raw, for about 2 us of
    CPU per image.
    """
    sink = io.BytesIO()
    codec = None if compression == "none" else compression
    writer = ipc.new_stream(sink, LOG_SCHEMA, options=ipc.IpcWriteOptions(compression=codec))
    writer.write_batch(batch)
    return sink.getvalue()[len(stream_header()) :]


@functools.cache
def host_name() -> str:
    """This machine's (or container's) name as it may appear in a file name."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"


class LogFile:
    """The file this writer appends to now; a new one after rotation or a failure."""

    def __init__(self, folder: Path, rotate_bytes: int) -> None:
        self.folder = folder
        self.rotate_bytes = rotate_bytes
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0

    def append(self, data: bytes, header: bytes = b"") -> Path:
        """Append ``data`` (whole records); return the file it went to. A new file starts
        with ``header`` (the stream's schema).

        On OSError none of ``data`` stays in the file and no file is left open.
        """
        if self._fd is not None and self._size and self._size + len(data) > self.rotate_bytes:
            self.close()
        if self._fd is None:
            self._open()
        assert self._fd is not None and self.path is not None
        fresh = self._size == 0
        if fresh:
            data = header + data
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
        while True:  # O_EXCL: a name another writer took (never seen) gets a new token
            stamp = datetime.now(timezone.utc).strftime(STAMP)
            name = f"inference-{stamp}-{host_name()}-{os.getpid()}-{secrets.token_hex(4)}"
            path = self.folder / f"{name}{SUFFIX}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                continue
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
