"""Processes that preprocess images in parallel, each with one OpenCV thread."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def one_opencv_thread() -> None:
    """Keep OpenCV to one thread in this process (a pool worker, a Ray task).

    Where processes are the parallelism (one per CPU: the scoring engines, the prepare
    stage's pool), OpenCV's own threads (one per core by default, whatever
    ``OMP_NUM_THREADS`` says, and Ray's ``num_cpus`` does not reach them) oversubscribe
    the cores. On 2 cores they made one process 12 % faster for twice the CPU, and two
    loaders 4-10 % slower together (1,124-1,249 against 1,233-1,266 images/s
    single-threaded). Call it first thing in a fresh process: in a *forked* child of a
    parent that has run OpenCV's threads it hangs (see :func:`image_pool`).
    """
    import cv2

    cv2.setNumThreads(1)


def image_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` fresh (spawned) processes, each with one OpenCV thread.

    Spawned, not forked: a forked child inherits OpenCV's thread pool without its
    threads, and its first parallel call or ``cv2.setNumThreads`` waits for them forever
    (a test process that had preprocessed images hung this way). Spawning costs each
    worker a second or so of imports; the jobs are pickled to it.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=one_opencv_thread)
