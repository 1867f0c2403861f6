"""Stage `augment`: balance the classes of the train split with new images derived from it.

Reads only data/split/train.csv and its images (val and test are never read, never augmented).
Writes data/augmented/images/, data/augmented/train.csv (the original train rows, then one row
per new image, linked to its source image by `source_path`, with the transforms applied in
`augmentation`) and plots/augment_preview.png.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from stages.augmentation import Transforms, derive_images, plan_augmentation, preview_rows
from stages.data_plots import augment_preview
from stages.parallel import worker_count
from stages.params import load_params
from stages.runner import run_stage

TRAIN_SPLIT = Path("data/split/train.csv")
OUT_DIR = Path("data/augmented")
PREVIEW_FILE = Path("plots/augment_preview.png")


def main() -> None:
    params = load_params()
    options = params.augment
    train = pd.read_csv(TRAIN_SPLIT)
    plan = plan_augmentation(
        train, target_ratio=options.target_ratio, extra_per_image=options.extra_per_image, seed=params.seed
    )
    transforms = Transforms(
        flip=options.flip,
        rotate90=options.rotate90,
        hsv_jitter=options.hsv_jitter,
        hed_jitter=options.hed_jitter,
        zoom=options.zoom,
    )
    if not transforms.enabled():
        print("augment: every transform is off, so new images are plain copies", file=sys.stderr)

    shutil.rmtree(OUT_DIR, ignore_errors=True)
    new = derive_images(
        plan, OUT_DIR / "images", transforms, seed=params.seed, workers=worker_count(options.workers)
    )
    combined = pd.concat([train.assign(source_path="", augmentation=""), new], ignore_index=True)
    combined.to_csv(OUT_DIR / "train.csv", index=False)
    shown = preview_rows(new)
    augment_preview(
        list(zip(shown["source_path"], shown["path"], shown["augmentation"], strict=True)), PREVIEW_FILE
    )
    counts = combined["label"].value_counts().sort_index().to_dict()
    print(f"augment: {len(new)} new images; train split now {counts}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
