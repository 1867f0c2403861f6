"""Mapping a function over many images on all cores, in order, with a progress bar."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
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
