"""How many threads OpenCV may use in a process that preprocesses images in parallel."""

from __future__ import annotations


def one_opencv_thread() -> None:
    """Keep OpenCV to one thread in this process (a pool worker, a Ray task).

    Where processes are the parallelism (one per CPU: the scoring engines, the prepare
    stage's pool), OpenCV's own threads (one per core by default, whatever
    ``OMP_NUM_THREADS`` says, and Ray's ``num_cpus`` does not reach them) oversubscribe
    the cores. On 2 cores they made one process 12 % faster for twice the CPU, and two
    loaders 4-10 % slower together (1,124-1,249 against 1,233-1,266 images/s
    single-threaded). Called as the pool's initializer, or first thing in a task.
    """
    import cv2

    cv2.setNumThreads(1)
