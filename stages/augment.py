"""Stage `augment`: balance the classes of the train split with new images of the minority class.

Reads only data/split/train.csv (val and test are never augmented). Writes data/augmented/images/
and data/augmented/train.csv: the original train rows plus one row per new image, linked to its
source image by `source_path`.
"""

from __future__ import annotations

import shutil
import sys
from functools import partial
from pathlib import Path

import pandas as pd

from stages.augmentation import Transforms, make_variant, plan_balancing, variant_name
from stages.parallel import map_in_processes, worker_count
from stages.params import load_params
from stages.runner import run_stage

TRAIN_SPLIT = Path("data/split/train.csv")
OUT_DIR = Path("data/augmented")


def main() -> None:
    params = load_params()
    train = pd.read_csv(TRAIN_SPLIT)
    sources = plan_balancing(train, params.augment.target_ratio, params.seed)

    shutil.rmtree(OUT_DIR, ignore_errors=True)
    images_dir = OUT_DIR / "images"
    images_dir.mkdir(parents=True)
    jobs = [(i, path, str(images_dir / variant_name(path, i))) for i, path in enumerate(sources["path"])]
    transforms = Transforms(params.augment.flip, params.augment.rotate90, params.augment.hsv_jitter)
    task = partial(make_variant, transforms=transforms, seed=params.seed)
    hashes = list(map_in_processes(task, jobs, workers=worker_count(), desc="augment"))

    new = sources.assign(
        source_path=sources["path"].to_numpy(),
        path=[target for _, _, target in jobs],
        filename=[Path(target).name for _, _, target in jobs],
        pixel_hash=hashes,
    )
    combined = pd.concat([train.assign(source_path=""), new], ignore_index=True)
    combined.to_csv(OUT_DIR / "train.csv", index=False)
    counts = combined["label"].value_counts().to_dict()
    print(f"augment: {len(new)} new images; train split now {counts}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
