"""Stage `augment`: balance the classes of the train split with new images derived from it.

Reads only data/split/train.csv and its images (val and test are never read, never augmented).
Writes data/augmented/images/, data/augmented/train.csv (the original train rows, then one row
per new image, linked to its source image by `source_path`, with the transforms applied in
`augmentation`) and plots/augment_preview.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from breakhis.data.augmentation import Transforms, derive_images, plan_augmentation, preview_rows
from breakhis.data.manifest_checks import check_manifest
from breakhis.data.parallel import worker_count
from breakhis.data.plots import augment_preview
from breakhis.pipeline.cli import parse_no_options
from breakhis.pipeline.files import read_table, replaced_folder
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import AUGMENT_PREVIEW, AUGMENTED, TRAIN_SPLIT
from breakhis.pipeline.stage import run_stage


def main() -> None:
    params = load_params()
    options = params.augment
    train = read_table(TRAIN_SPLIT, ("path", "filename", "label", "target", "patient"), "split")
    check_manifest(train, TRAIN_SPLIT)  # a hand-edited split: named here, not as a NaN deep inside
    plan = plan_augmentation(
        train, target_ratio=options.target_ratio, extra_per_image=options.extra_per_image, seed=params.seed
    )
    transforms = Transforms(
        flip=options.flip,
        rotate90=options.rotate90,
        zoom=options.zoom,
    )
    if not transforms.enabled():
        print("augment: every transform is off, so new images are plain copies", file=sys.stderr)

    with replaced_folder(AUGMENTED) as staging:  # the previous output stays whole until this succeeds
        new = derive_images(
            plan, staging / "images", transforms, seed=params.seed, workers=worker_count(options.workers)
        )
        new["path"] = [(AUGMENTED / "images" / Path(path).name).as_posix() for path in new["path"]]
        combined = pd.concat([train.assign(source_path="", augmentation=""), new], ignore_index=True)
        combined.to_csv(staging / "train.csv", index=False)
    shown = preview_rows(new)
    augment_preview(
        list(zip(shown["source_path"], shown["path"], shown["augmentation"], strict=True)), AUGMENT_PREVIEW
    )
    counts = combined["label"].value_counts().sort_index().to_dict()
    print(f"augment: {len(new)} new images; train split now {counts}", file=sys.stderr)


if __name__ == "__main__":
    parse_no_options("stages.augment", __doc__)  # --help: usage, nothing read or written
    run_stage(main)
