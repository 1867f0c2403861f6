"""Mapping a function over many images on all cores, in order, with a progress bar.

Two flavours: processes, for work that holds the GIL (Python and NumPy loops), and threads, for
work that runs in C with the GIL released (OpenCV decode/resize/encode, hashlib on large buffers),
where threads avoid process start-up and pickling. Both keep only a small window of items in
flight, so memory does not grow with the number of items.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

import cv2
from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def worker_count(requested: int = 0) -> int:
    """`requested` processes, or one per CPU core when 0."""
    return requested or os.cpu_count() or 1


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one image per process; OpenCV's own threads would oversubscribe


def map_in_processes(
    task: Callable[[Item], Result], items: Sequence[Item], *, workers: int, desc: str
) -> Iterator[Result]:
    """Yield task(item) for each item in order; results stream, so memory stays per item."""
    progress = tqdm(total=len(items), desc=desc, unit="img", mininterval=2)
    with progress:
        if workers <= 1:
            for item in items:
                yield task(item)
                progress.update()
            return
        chunksize = max(1, min(32, len(items) // (workers * 8)))
        # spawn, not fork: a forked child inherits OpenCV's and TensorFlow's thread pools and can deadlock
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            for result in pool.map(task, items, chunksize=chunksize):
                yield result
                progress.update()


def map_in_threads(
    task: Callable[[Item], Result], items: Sequence[Item], *, workers: int, desc: str, window: int = 4
) -> Iterator[Result]:
    """Yield task(item) for each item in order, on `workers` threads with `window` items each in flight.

    OpenCV's own thread pool is set to one thread meanwhile (one image per thread; restored after).
    """
    progress = tqdm(total=len(items), desc=desc, unit="img", mininterval=2)
    previous_threads = cv2.getNumThreads()
    with progress:
        if workers <= 1:
            for item in items:
                yield task(item)
                progress.update()
            return
        cv2.setNumThreads(1)
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix=desc) as pool:
                pending: deque[Future[Result]] = deque()
                queue = iter(items)
                for item in queue:
                    pending.append(pool.submit(task, item))
                    if len(pending) >= workers * window:
                        break
                try:
                    while pending:
                        result = pending.popleft().result()
                        pending.extend(pool.submit(task, item) for item in itertools.islice(queue, 1))
                        yield result
                        progress.update()
                finally:  # an error or an abandoned generator: do not start what is still queued
                    for future in pending:
                        future.cancel()
        finally:
            cv2.setNumThreads(previous_threads)
