"""Pause points for fault-injection tests: hold a stage still at a named moment.

    MNIST_PAUSE_AT=checkpoint:/tmp/paused dvc repro train

With the variable set to ``<point>:<file>``, the stage that reaches that point
creates the file (holding its process id) and waits there until the file is
deleted. A test that kills a stage "mid-way" waits for the file and signals at a
moment it chose; without it the test could only hope that the stage was still
running, which on a fast machine it no longer is. Each point pauses once per
process. Unset (every run outside such a test), nothing waits and nothing is written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mnist_mlops.core.fileio import atomic_open

PAUSE_ENV = "MNIST_PAUSE_AT"
# Where a stage can be held: the train stage after its first checkpoint file is written
# (mnist_mlops.train.pause), the export stage while the ONNX file is still a staging file,
# an alias move between numbering its history event and writing it (registry.aliases).
POINTS = ("checkpoint", "onnx-staged", "history-numbered")
POLL_S = 0.05  # how often a paused stage looks whether its file is gone

_paused: set[str] = set()


def pause_requested(point: str) -> Path | None:
    """The file to pause with at ``point``, if $MNIST_PAUSE_AT asks for it (once a process)."""
    if point not in POINTS:
        raise ValueError(f"unknown pause point {point!r}; known: {POINTS}")
    name, sep, path = os.environ.get(PAUSE_ENV, "").partition(":")
    return Path(path) if sep and name == point and path and point not in _paused else None


def pause_here(point: str) -> None:
    """At ``point``: if asked to, write the file and wait until it is deleted.

    A signal (SIGINT, SIGTERM) ends the wait as it would end any other moment of the stage.
    """
    marker = pause_requested(point)
    if marker is None:
        return
    _paused.add(point)
    with atomic_open(marker, "w") as handle:  # whole or absent: the test reads it
        handle.write(f"{os.getpid()}\n")
    while marker.exists():
        time.sleep(POLL_S)
