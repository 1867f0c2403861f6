"""Offline augmentation that suits histology: orientation carries no meaning and stain varies
between labs, so flips, 90-degree rotations and a small HSV jitter make plausible new images.

Used to balance the classes of the train split: each new image is derived from one source image
of the minority class and keeps its patient, class and magnification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from stages.images import pixel_hash, read_rgb, write_rgb


@dataclass(frozen=True)
class Transforms:
    flip: bool = True
    rotate90: bool = True
    hsv_jitter: float = 0.04  # max relative shift of hue, saturation and value


def augment_image(image: np.ndarray, transforms: Transforms, rng: np.random.Generator) -> np.ndarray:
    """One random variant of an RGB image."""
    out = image
    if transforms.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    if transforms.rotate90:
        out = np.rot90(out, k=int(rng.integers(4)))
    if transforms.hsv_jitter > 0:
        hsv = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2HSV).astype(np.float32)
        shift = rng.uniform(-transforms.hsv_jitter, transforms.hsv_jitter, size=3)
        hsv[..., 0] = (hsv[..., 0] + shift[0] * 180) % 180
        hsv[..., 1:] *= 1 + shift[1:]
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return np.ascontiguousarray(out)


def plan_balancing(train: pd.DataFrame, target_ratio: float, seed: int) -> pd.DataFrame:
    """Rows of the minority class to derive new images from, so minority/majority >= target_ratio.

    Sources are drawn round-robin over a seeded shuffle, so every minority image is used
    before any is used twice.
    """
    counts = train["target"].value_counts()
    if len(counts) < 2:
        raise ValueError("the train split has only one class; nothing to balance against")
    minority = counts.idxmin()
    needed = int(np.ceil(target_ratio * counts.max())) - counts.min()
    if needed <= 0:
        return train.iloc[0:0]
    pool = train[train["target"] == minority].sample(frac=1.0, random_state=seed)
    return pool.iloc[np.arange(needed) % len(pool)]


def make_variant(job: tuple[int, str, str], transforms: Transforms, seed: int) -> str:
    """Write the variant number `index` of `source` to `target`; returns its pixel hash."""
    index, source, target = job
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    image = augment_image(read_rgb(source), transforms, rng)
    write_rgb(target, image)
    return pixel_hash(image)


def variant_name(source: str, index: int) -> str:
    return f"{Path(source).stem}-aug{index:05d}.png"
