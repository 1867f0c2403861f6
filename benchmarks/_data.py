"""Benchmark inputs: synthetic BreakHis PNGs at the ingested size, made once per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from breakhis.data.dataset import scan_images
from breakhis.data.synthetic import write_synthetic_breakhis


def synthetic_images(
    root: Path, count: int, size: tuple[int, int] = (230, 350)
) -> tuple[list[str], np.ndarray]:
    """About `count` PNG paths (4 magnifications x 3 images per patient) and their 0/1 labels."""
    patients = max(2, round(count / 12))
    tree = write_synthetic_breakhis(
        root,
        seed=0,
        benign_patients=patients // 2,
        malignant_patients=patients - patients // 2,
        images_per_magnification=3,
        image_size=size,
    )
    records = scan_images(tree)[:count]
    return [r.source for r in records], np.array([r.target for r in records], dtype="float32")
