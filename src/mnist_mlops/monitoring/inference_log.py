"""The inference log: a record of every answered image, written without slowing an answer.

The request path only hands over references (:meth:`InferenceLog.record`: a lock, an
append, random request ids); one writer thread per worker process turns what piled up
into one Arrow record batch every ``FLUSH_INTERVAL_S`` (:func:`~.records.build_batch`:
the pixels as one block, the answers as columns) and appends it to this worker's file
(:mod:`.logfiles`). Then it tells the corrections store which requests it logged (one
index row per request, however many images it had), so ``POST /feedback`` can find a
request's file and refuse ids that were never logged or have expired.

Observing must never hurt serving: a full queue drops records, a failing folder (full,
read-only, not a folder) drops the records it could not take, and a failing store only
loses the index. Each is counted through :class:`LogCounters` (the service puts them on
``/metrics``) and logged once per episode, never raised into a request.

    log = InferenceLog(settings, model_version, model_sha256, counters, index=store)
    ids = log.record(pixels, probabilities, endpoint="/predict", source="upload")
    ...
    log.flush()  # returns once everything queued so far is written (or dropped)
    log.close()  # writes what is still queued
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from mnist_mlops.monitoring.logfiles import LogFile, encode_batch, stream_header, sweep
from mnist_mlops.monitoring.records import Answered, ModelTag, build_batch, score_shadows
from mnist_mlops.monitoring.settings import MonitoringSettings

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.2  # how long records may wait: batches them, bounds what a crash loses
SWEEP_INTERVAL_S = 60.0  # retention is checked this often, and at each rotation
RETRY_INTERVAL_S = 1.0  # after a failed write, records are dropped this long before a retry
MB = 1024 * 1024
# The labels of what is counted: why records were dropped, which operation failed.
DROP_REASONS = ("queue_full", "write_failed")
STAGES = ("write", "index", "retention", "shadow")


class LogCounters(Protocol):
    """Where the log reports what it wrote and what it lost (prometheus counters)."""

    def written(self, records: int) -> None: ...

    def dropped(self, reason: str, records: int) -> None: ...

    def failed(self, stage: str) -> None: ...


class RequestIndex(Protocol):
    """What the corrections store needs to know about logged requests."""

    def add_requests(self, request_keys: Sequence[str], log_file: str, when: float) -> None: ...

    def forget_log_file(self, log_file: str) -> None: ...


REQUEST_KEY_DIGITS = 26  # an id's first digits name its request: time (12) + random (14)
IMAGE_DIGITS = 32 - REQUEST_KEY_DIGITS  # then the image's place in the request


def new_request_ids(n: int) -> list[str]:
    """``n`` ids of 32 hex digits for the ``n`` images of one request: the time in
    milliseconds (12 digits) and 56 random bits (14), the same for the whole request,
    then the image's index (6).

    Random enough that nobody can guess another request's ids and send feedback for them;
    time first, so ids of one moment sit together in the store's index, where appending
    costs a fraction of inserting at random places; one key per request
    (:func:`request_key`), so a 256-image request is one index row, not 256.
    """
    if n >= 16**IMAGE_DIGITS:
        raise ValueError(f"{n} images in one request: at most {16**IMAGE_DIGITS - 1}")
    key = f"{time.time_ns() // 1_000_000:012x}"[-12:] + os.urandom(7).hex()
    return [f"{key}{i:06x}" for i in range(n)]


def request_key(request_id: str) -> str:
    """The part of an image's id that names its request (the corrections index's key)."""
    return request_id[:REQUEST_KEY_DIGITS]


class InferenceLog:
    """See the module docstring. ``index`` may be None (no corrections store)."""

    def __init__(
        self,
        settings: MonitoringSettings,
        model_version: str,
        model_sha256: str,
        counters: LogCounters,
        index: RequestIndex | None = None,
        retry_s: float = RETRY_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self._model = (model_version, model_sha256)
        self._counters = counters
        self._index = index
        self._queue: list[Answered] = []
        self._pending = 0  # records in the queue
        self._queued = 0  # requests ever queued; the writer has handled the first _handled
        self._handled = 0
        self._lock = threading.Condition()
        self._wake = threading.Event()  # write now: a flush or close asked
        self._stop = threading.Event()
        self._file = LogFile(settings.log_dir, int(settings.rotate_mb * MB))
        self._failing: set[str] = set()  # stages now failing: each is logged once
        self._retry_s = retry_s
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        if settings.log_enabled:
            self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
            self._thread.start()

    def record(
        self,
        pixels: np.ndarray,
        probabilities: np.ndarray,
        endpoint: str,
        source: str,
        model: ModelTag | None = None,
        shadow: ModelTag | None = None,
        shadow_probabilities: np.ndarray | None = None,
        request_ids: list[str] | None = None,
        shadow_scorer: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> list[str]:
        """Queue one request's answers; return their request ids (new ones per image
        unless ``request_ids`` gives them).

        ``model`` names the model that answered (default: the log's own); ``shadow`` and
        its ``shadow_probabilities``, a second model that scored the same images, or its
        ``shadow_scorer`` that the writer calls for them (batched; :func:`score_shadows`).
        """
        ids = request_ids if request_ids is not None else new_request_ids(len(probabilities))
        if self._thread is None:
            return ids
        answered = Answered(ids, time.time(), endpoint, source, pixels, probabilities,
                            model, shadow, shadow_probabilities, shadow_scorer)  # fmt: skip
        with self._lock:
            full = self._pending + len(ids) > self.settings.queue_records
            if not full:
                self._queue.append(answered)
                self._pending += len(ids)
                self._queued += 1
            # Bulk traffic fills the queue within one interval: write now, before it is full.
            early = self._pending * 2 > self.settings.queue_records
        if full:
            self._counters.dropped("queue_full", len(ids))
        elif early:
            self._wake.set()
        return ids

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every request queued before this call is written or dropped (and the
        retention sweep that writing triggered is done).

        For tests and shutdown, never the request path; False if ``timeout`` passed first.
        """
        with self._lock:
            target = self._queued
            self._wake.set()
            return self._lock.wait_for(lambda: self._handled >= target, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, close the file; later records are not written."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ---- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        next_sweep = 0.0
        stopping = False
        while not stopping:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            stopping = self._stop.is_set()
            with self._lock:
                batch, self._queue, self._pending = self._queue, [], 0
                taken = self._queued
            rotated = self._write(batch) if batch else False
            if rotated or time.monotonic() >= next_sweep:
                self._sweep()
                next_sweep = time.monotonic() + SWEEP_INTERVAL_S
            # After the sweep: a flush returns on a folder that rotation and retention
            # have already tidied, never one whose files are still being deleted.
            with self._lock:
                self._handled = taken
                self._lock.notify_all()
        self._file.close()

    def _write(self, batch: list[Answered]) -> bool:
        """Write ``batch``'s records; return True if a new file was started."""
        count = sum(len(a.request_ids) for a in batch)
        if time.monotonic() < self._retry_at:
            self._counters.dropped("write_failed", count)
            return False
        before = self._file.path
        try:
            batch = score_shadows(batch)
        except Exception as exc:  # the shadow model failed: the records go without it
            self._trouble("shadow", f"the shadow model could not score: {exc}")
        else:
            self._recovered("shadow")
        try:
            records = build_batch(batch, ModelTag(*self._model), self.settings.log_images)
            data = encode_batch(records, self.settings.log_compression)
            path = self._file.append(data, header=stream_header())
        except Exception as exc:  # OSError from the folder; anything else is a bug, same care
            self._retry_at = time.monotonic() + self._retry_s
            self._counters.dropped("write_failed", count)
            self._trouble("write", f"cannot write to {self.settings.log_dir}: {exc}")
            return False
        self._recovered("write")
        self._counters.written(count)
        if self._index is not None:
            keys = list(dict.fromkeys(request_key(i) for a in batch for i in a.request_ids))
            try:
                self._index.add_requests(keys, path.name, batch[-1].time)
            except Exception as exc:
                self._trouble("index", f"cannot record logged request ids: {exc}")
            else:
                self._recovered("index")
        return before is not None and before != path

    def _sweep(self) -> None:
        settings = self.settings
        forget = self._forget if self._index is not None else _keep
        try:
            sweep(settings.log_dir, int(settings.max_total_mb * MB),
                  settings.retention_days * 86400, forget)  # fmt: skip
        except Exception as exc:
            self._trouble("retention", f"cannot apply retention in {settings.log_dir}: {exc}")
        else:
            self._recovered("retention")

    def _forget(self, log_file: str) -> None:
        """The index forgets a file about to be deleted; a failing store is counted and
        the file deleted anyway (its corrections then export as 'without a logged input'),
        so retention and the size bound hold whatever the store does."""
        try:
            self._index.forget_log_file(log_file)  # type: ignore[union-attr]
        except Exception as exc:
            self._trouble("index", f"the corrections index cannot forget {log_file}: {exc}")

    def _trouble(self, stage: str, message: str) -> None:
        """Count every failure; log only the first of an episode (no log flood)."""
        self._counters.failed(stage)
        if stage not in self._failing:
            self._failing.add(stage)
            logger.error(
                "inference log: %s; counted on /metrics (mnist_inference_log_failures_total)"
                " and not logged again until it works", message,
            )  # fmt: skip

    def _recovered(self, stage: str) -> None:
        if stage in self._failing:
            self._failing.discard(stage)
            logger.warning("inference log: %s works again", stage)


def _keep(_: str) -> None:
    """No store to tell: deleting a log file needs no other bookkeeping."""
