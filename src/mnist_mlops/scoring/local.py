"""The local engine: every core of this machine, memory bounded by a window of work.

Arrays need no decoding: the main process reads one part at a time and ONNX
Runtime spreads each batch over all cores. Images are decoded and preprocessed
in a process pool (the preprocessing is Python and numpy, one core per process),
in chunks of files; the main process keeps at most a fixed window of chunks in
flight, collects them in order, and scores each part as soon as it is complete.
"""

from __future__ import annotations

import collections
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from mnist_mlops.imaging.pools import one_opencv_thread
from mnist_mlops.scoring.parts import PartStore, part_table
from mnist_mlops.scoring.predictor import OnnxPredictor
from mnist_mlops.scoring.sources import Batch, ImageFolder, Source

CHUNK = 64  # images per pool task: enough to amortise pickling, small enough to balance
WINDOW_PER_WORKER = 4  # chunks in flight per worker: keeps them busy, bounds memory


def score_part(predictor: OnnxPredictor, source: Source, batch: Batch) -> tuple:
    """Predictions for a loaded part, as the part store's table."""
    digits, prob, probs = predictor.predict(batch.pixels)
    return part_table(source.id_column, batch.ids, digits, prob, probs)


def run_local(
    source: Source,
    store: PartStore,
    model: bytes,
    workers: int,
    progress: Callable[[int], object],
) -> None:
    """Score every pending part of ``store`` on this machine."""
    pending = store.pending()
    if isinstance(source, ImageFolder) and workers > 1:
        _images_in_pool(source, store, pending, model, workers, progress)
        return
    predictor = OnnxPredictor(model, threads=workers)
    for k in pending:
        batch = source.load(*store.bounds(k))
        store.write(k, score_part(predictor, source, batch), batch.errors, batch.digest())
        progress(len(batch.ids) + len(batch.errors))


def _images_in_pool(
    source: ImageFolder,
    store: PartStore,
    pending: list[int],
    model: bytes,
    workers: int,
    progress: Callable[[int], object],
) -> None:
    # spawn: workers are not forks of a process that already runs ORT and tqdm threads.
    context = multiprocessing.get_context("spawn")
    chunks = [
        (k, start, min(start + CHUNK, store.bounds(k)[1]))
        for k in pending
        for start in range(store.bounds(k)[0], store.bounds(k)[1], CHUNK)
    ]
    init = (_init_worker, (os.getpid(),))
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=init[0], initargs=init[1]
    ) as pool:
        # Only the main process's ORT threads compete with the workers, and briefly.
        predictor = OnnxPredictor(model, threads=1)
        window: collections.deque[tuple[int, Future]] = collections.deque()
        todo = iter(chunks)
        current: list[Batch] = []
        current_part = pending[0] if pending else -1
        while True:
            while len(window) < WINDOW_PER_WORKER * workers:
                item = next(todo, None)
                if item is None:
                    break
                files = source.files[item[1] : item[2]]  # not the whole listing per task
                window.append((item[0], pool.submit(load_images, source.root, files)))
            if not window:
                break
            k, future = window.popleft()
            if k != current_part:
                _finish(predictor, source, store, current_part, current)
                current, current_part = [], k
            batch = future.result()
            current.append(batch)
            progress(len(batch.ids) + len(batch.errors))
        if current:
            _finish(predictor, source, store, current_part, current)


def load_images(root: str, files: tuple[str, ...]) -> Batch:
    """Pool task: these files of the folder, through the service's preprocessing."""
    return ImageFolder(root, files).load(0, len(files))


def _finish(
    predictor: OnnxPredictor, source: Source, store: PartStore, k: int, pieces: list[Batch]
) -> None:
    batch = Batch.concat(pieces)
    store.write(k, score_part(predictor, source, batch), batch.errors, batch.digest())


def _init_worker(parent: int) -> None:
    """Pool initializer: one OpenCV thread per worker, and die with the parent."""
    one_opencv_thread()
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """A worker dies with the scoring process, even by SIGKILL.

    Otherwise a killed run leaves workers blocked on their task queue forever, holding
    the terminal's (or a test's) stdout open. Linux only; elsewhere they linger.
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)
