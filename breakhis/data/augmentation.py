"""Offline augmentation that suits histology: orientation carries no meaning, so flips and
90-degree rotations (and an optional small zoom) make plausible new images.

Colour is not changed here: these copies balance the classes, so they are mostly of one class, and
colour jitter on them alone would be a class cue. Colour and stain augmentation run on-line in
training (`train.hed_jitter`, `train.hsv_jitter`), the same for every train image of both classes.

Used on the train split only, to balance the classes (and optionally to add new images of every
class): each new image is derived from one source image and keeps its patient, class and
magnification. Every new image has its own random stream, keyed by the seed and its index in the
plan, so the output does not depend on how many processes make it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from breakhis.data.images import pixel_hash, read_rgb, write_rgb
from breakhis.data.parallel import map_in_processes


@dataclass(frozen=True)
class Transforms:
    flip: bool = True  # mirror images (horizontal or vertical flips)
    rotate90: bool = True  # quarter turns (half turns only, on non-square images)
    zoom: float = 0.0  # max zoom-in: a random crop of 1/(1+z) of each side, resized back

    def enabled(self) -> bool:
        return self.flip or self.rotate90 or self.zoom > 0


def zoom_in(image: np.ndarray, scale: float, corner: np.ndarray) -> np.ndarray:
    """Crop 1/scale of each side at `corner` (fractions of the free margin), resize back."""
    height, width = image.shape[:2]
    crop_h, crop_w = max(1, round(height / scale)), max(1, round(width / scale))
    top, left = round(corner[0] * (height - crop_h)), round(corner[1] * (width - crop_w))
    crop = image[top : top + crop_h, left : left + crop_w]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


def augment_image(
    image: np.ndarray, transforms: Transforms, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """One random variant of an RGB image, of the same shape, and a short description of it."""
    out, done = image, list[str]()
    # orientation: a mirror and a number of quarter turns, drawn uniformly from the symmetries
    # allowed (8 on square images; 4 that keep the shape of non-square ones: turns 0 or 2)
    mirror = transforms.flip and rng.random() < 0.5
    square = image.shape[0] == image.shape[1]
    if transforms.rotate90 and square:
        turns = int(rng.integers(4))
    elif transforms.rotate90 or transforms.flip:  # two flips make a half turn
        turns = 2 * int(rng.integers(2))
    else:
        turns = 0
    if mirror:
        out, done = out[:, ::-1], [*done, "mirror"]
    if turns:
        out, done = np.rot90(out, k=turns), [*done, f"rot{90 * turns}"]
    if transforms.zoom > 0:
        scale = 1 + float(rng.uniform(0, transforms.zoom))
        out, done = zoom_in(np.ascontiguousarray(out), scale, rng.random(2)), [*done, f"zoom{scale:.2f}"]
    return np.ascontiguousarray(out), "+".join(done) or "copy"


def plan_augmentation(
    train: pd.DataFrame, *, target_ratio: float, extra_per_image: float = 0.0, seed: int
) -> pd.DataFrame:
    """The train rows to derive new images from, one row per new image.

    First `extra_per_image` new images per image of every class (rounded per class), then more of
    the minority class until minority / majority >= target_ratio. Sources are drawn round-robin
    over a seeded shuffle of their class, so every image is used before any is used twice.
    """
    targets = train["target"].to_numpy(dtype=int)
    counts = {int(cls): int((targets == cls).sum()) for cls in np.unique(targets)}
    if len(counts) < 2:
        raise ValueError("the train split has only one class; nothing to balance against")
    wanted = {cls: round(extra_per_image * n) for cls, n in counts.items()}
    after = {cls: n + wanted[cls] for cls, n in counts.items()}
    minority = min(after, key=lambda cls: (after[cls], cls))
    majority = max(after.values())
    wanted[minority] += max(0, math.ceil(target_ratio * majority - 1e-9) - after[minority])
    plan = []
    for cls, n in wanted.items():
        pool = train[train["target"] == cls].sample(frac=1.0, random_state=seed + cls)
        plan.append(pool.iloc[np.arange(n) % len(pool)])
    return pd.concat(plan)


def _make_variant(job: tuple[int, str, str], transforms: Transforms, seed: int) -> tuple[str, str]:
    """Write variant number `index` of `source` to `target`; return its pixel hash and description."""
    index, source, target = job
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    image, description = augment_image(read_rgb(source), transforms, rng)
    write_rgb(target, image)
    return pixel_hash(image), description


def variant_name(source: str, index: int) -> str:
    return f"{Path(source).stem}-aug{index:05d}.png"


def derive_images(
    plan: pd.DataFrame, out_dir: Path, transforms: Transforms, *, seed: int, workers: int
) -> pd.DataFrame:
    """Make one new image per plan row in out_dir, in parallel; their manifest rows.

    Each row keeps its source's patient, class, subtype and magnification; `source_path` links it
    to the source image and `augmentation` says what was done to it. Workers read one image at a
    time and return only its hash, so memory does not grow with the dataset.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(i, source, str(out_dir / variant_name(source, i))) for i, source in enumerate(plan["path"])]
    task = partial(_make_variant, transforms=transforms, seed=seed)
    results = list(map_in_processes(task, jobs, workers=workers, desc="augment"))
    return plan.assign(
        source_path=plan["path"].to_numpy(),
        path=[target for _, _, target in jobs],
        filename=[Path(target).name for _, _, target in jobs],
        pixel_hash=[digest for digest, _ in results],
        augmentation=[description for _, description in results],
    ).reset_index(drop=True)


def preview_rows(new: pd.DataFrame, count: int = 8) -> pd.DataFrame:
    """Up to `count` new images spread evenly over the plan (so every class shows)."""
    if new.empty:
        return new
    picks = np.unique(np.linspace(0, len(new) - 1, min(count, len(new))).round().astype(int))
    return new.iloc[picks]
