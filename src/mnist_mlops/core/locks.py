"""File locks between processes on one machine, and where an MLflow sqlite store lives.

Both sides need them: the training side serialises creating a store's schema
(:mod:`mnist_mlops.tracking.runs`), the registry serialises every move of an alias
(:mod:`mnist_mlops.registry.aliases`). A lock sits beside a sqlite store (so it also covers
machines sharing the file over a file system) or, for a server, in the user's cache folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory sqlite)."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def cache_folder() -> Path:
    """``$XDG_CACHE_HOME/mnist-mlops`` (``~/.cache``), or a per-user temp folder when the
    home cannot be written (a container's read-only home)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-mlops"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path(tempfile.gettempdir()) / f"mnist-mlops-{os.getuid()}"
    return cache


@contextlib.contextmanager
def flock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, saying so in the log when it has to wait.

    Not re-entrant: a process that holds the lock and opens it again waits for itself.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # the lock is released when the file is closed
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for %s to finish (%s)", what, path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
