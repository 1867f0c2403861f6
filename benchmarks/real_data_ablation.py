"""The fast loop for model-quality levers: the custom CNN alone, patient-grouped 5-fold CV on a real
BreakHis tree, with the project's own views, stain normalisation, colour jitter and colour baseline.

python benchmarks/real_data_ablation.py /path/to/BreaKHis_v1 --input patches --image-size 96
python benchmarks/real_data_ablation.py /path/to/BreaKHis_v1 --input field --image-size 96 144
python benchmarks/real_data_ablation.py /path/to/BreaKHis_v1 --stain macenko --hed 0.05 --hsv 0.04
python benchmarks/real_data_ablation.py /path/to/BreaKHis_v1 --colour haematoxylin --seed 1 \
    --predictions haematoxylin-s1.csv
python benchmarks/real_data_ablation.py /path/to/BreaKHis_v1 --folds pipeline --seed 42 --train-seed 1 \
    --predictions t1-s42.csv

A few minutes per fold on 2 CPU cores, instead of the whole pipeline's three models. Fixed epochs, no
validation split (every model trains the same number of epochs): it compares levers, it does not
choose epochs. Prints per-fold ROC AUC, the pooled out-of-fold AUC with a 95% interval that
resamples patient groups, the colour baseline on the same folds, and how closely the CNN follows it
(Spearman correlation over patients of their mean probabilities); appends a JSON line to --log and,
with --predictions, writes every image's out-of-fold probabilities (the columns of evaluate's
predictions CSVs, so `breakhis.evaluation.comparison.paired_comparison` pairs two runs' files: runs
with the same --seed test every image in the same fold, whatever their --train-seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402

from breakhis.data.dataset import scan_images  # noqa: E402
from breakhis.data.images import cover_and_crop, read_rgb  # noqa: E402
from breakhis.data.partition import kfold_assignment  # noqa: E402
from breakhis.data.stain import normalize_stain  # noqa: E402
from breakhis.evaluation.baselines import colour_features, fit_colour_baseline  # noqa: E402
from breakhis.evaluation.cross_validation.pooled import follows_colour  # noqa: E402
from breakhis.modeling.views import ViewParams, mean_over_views, views_per_image  # noqa: E402
from breakhis.pipeline.coherence import scaled_size  # noqa: E402

FIELD = (230, 350)  # ingest.image_size


def load(tree: Path, stain: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The images, and a row per image: filename, patient, patient_group, target, actual."""
    records = scan_images(tree)
    images = np.stack(
        [normalize_stain(cover_and_crop(read_rgb(r.source), FIELD), stain).image for r in records]
    )
    rows = pd.DataFrame(
        {
            "filename": [r.filename for r in records],
            "patient": [r.patient for r in records],
            "patient_group": [r.patient_group for r in records],
            "target": [r.target for r in records],
            "actual": [r.label for r in records],
            "subtype": [r.subtype for r in records],
            # the split stage links patient groups that share an image's pixels (ingest's pixel_hash)
            "pixel_hash": [hashlib.sha256(image.tobytes()).hexdigest() for image in images],
        }
    )
    return images, rows


def pooled_interval(
    targets: np.ndarray, scores: np.ndarray, groups: np.ndarray, seed: int = 0
) -> list[float]:
    rng = np.random.default_rng(0)
    index = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    keys, samples = list(index), []
    for _ in range(1000):
        rows = np.concatenate([index[k] for k in rng.choice(keys, len(keys))])
        if len(np.unique(targets[rows])) == 2:
            samples.append(roc_auc_score(targets[rows], scores[rows]))
    return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tree", type=Path, help="a BreaKHis_v1 folder (or any parent)")
    parser.add_argument("--input", choices=("field", "patches"), default="patches")
    parser.add_argument("--image-size", type=int, nargs="+", default=[96])
    parser.add_argument("--patch-scale", type=float, default=1.0)
    parser.add_argument("--patches-per-image", type=int, default=4)
    parser.add_argument("--stain", choices=("none", "macenko"), default="none")
    parser.add_argument("--hed", type=float, default=0.0)
    parser.add_argument("--hsv", type=float, default=0.0)
    parser.add_argument("--colour", choices=("rgb", "grey", "haematoxylin"), default="rgb")
    parser.add_argument(
        "--stain-transfer",
        action="store_true",
        help="the train stage's train.stain_transfer: each image takes the stain of another of its batch",
    )
    parser.add_argument("--epochs", type=int, default=30)
    # the train stage's recipe, one factor at a time (the gap between this loop and a profile's CV)
    parser.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="cosine: the train stage's CosineDecay over every step of the run",
    )
    parser.add_argument(
        "--rotation",
        choices=("none", "any"),
        default="none",
        help="any: the train stage's on-line augmenter (random flips, then any angle, reflected)",
    )
    parser.add_argument(
        "--oversample",
        action="store_true",
        help="as the augment stage at target_ratio 1: the minority class repeated up to the majority",
    )
    parser.add_argument("--seed", type=int, default=0, help="the folds' seed, and the training's by default")
    parser.add_argument(
        "--train-seed",
        type=int,
        help="the training's seed (weights, patch order, augmentation), for other models on --seed's folds",
    )
    parser.add_argument("--log", type=Path, default=Path("real_data_ablation.jsonl"))
    parser.add_argument(
        "--folds",
        choices=("sklearn", "pipeline"),
        default="sklearn",
        help="sklearn: StratifiedGroupKFold; pipeline: the split stage's patient-grouped folds for "
        "--seed (split.strategy kfold, as commands.cross_validate runs them)",
    )
    parser.add_argument("--predictions", type=Path, help="write the out-of-fold predictions to this CSV")
    args = parser.parse_args()
    size = tuple(args.image_size * 2 if len(args.image_size) == 1 else args.image_size[:2])
    train_seed = args.seed if args.train_seed is None else args.train_seed

    import keras
    import tensorflow as tf

    from breakhis.modeling.architectures import build_custom_cnn
    from breakhis.modeling.input_pipeline import (
        ColourJitter,
        colour_jitter,
        geometric_augmenter,
        inference_views,
        stain_free,
    )

    images, rows = load(args.tree, args.stain)
    targets, groups = rows["target"].to_numpy(), rows["patient_group"].to_numpy()
    view = ViewParams(args.input, args.patch_scale, args.patches_per_image)
    jitter = ColourJitter(args.hed, args.hsv, args.stain_transfer)
    views = views_per_image(FIELD, size, view)

    repeats = args.patches_per_image if args.input == "patches" else 1  # samples per image and epoch

    def balanced(train: np.ndarray) -> np.ndarray:
        """The train rows, the minority class's repeated (then cut) up to the majority's count."""
        if not args.oversample:
            return train
        by_class = [train[targets[train] == c] for c in (0, 1)]
        small, large = sorted(by_class, key=len)
        extra = np.resize(small, len(large) - len(small))
        return np.concatenate([train, extra])

    def training_data(train: np.ndarray, seed: int) -> tf.data.Dataset:
        """The rows to fit (already `balanced`), as the stage's batches of random patches."""
        data = tf.data.Dataset.from_tensor_slices((images[train], targets[train].astype("float32")))
        data = data.repeat(repeats).shuffle(len(train) * repeats, seed=train_seed)

        def sample(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            image = tf.cast(image, tf.float32)
            if args.input == "field":
                image = tf.image.resize(image, size, antialias=True)
            else:
                scaled = scaled_size(FIELD, args.patch_scale)
                image = tf.image.random_crop(tf.image.resize(image, scaled, antialias=True), (*size, 3))
            image = tf.image.random_flip_up_down(tf.image.random_flip_left_right(image))
            return image, label

        data = data.map(sample, num_parallel_calls=2).batch(32)
        if args.rotation == "any":
            augmenter = geometric_augmenter(seed)
            data = data.map(lambda x, y: (augmenter(x, training=True), y))
        if jitter.enabled():
            data = data.map(lambda x, y: (colour_jitter(x, jitter), y))
        return data.map(lambda x, y: (stain_free(x, args.colour), y)).prefetch(2)

    if args.folds == "pipeline":  # the records carry what the split stage reads of ingest's manifest
        fold_of = kfold_assignment(rows, folds=5, group_by="root", seed=args.seed)
        folds = [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(5)]
    else:
        folds = StratifiedGroupKFold(5, shuffle=True, random_state=args.seed).split(images, targets, groups)
    scores, colour = np.zeros(len(targets)), np.zeros(len(targets))
    features = np.stack([colour_features(image) for image in images])
    per_fold, started = [], time.monotonic()
    for fold, (train, test) in enumerate(folds):
        keras.utils.set_random_seed(train_seed + fold)
        colour[test] = fit_colour_baseline(features[train], targets[train]).predict_proba(features[test])[
            :, 1
        ]
        model = build_custom_cnn(size, [16, 32, 64, 128], 0.3, True)
        fitted = balanced(train)
        rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3
        if args.lr_schedule == "cosine":
            steps = -(-len(fitted) * repeats // 32) * args.epochs
            rate = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)
        model.compile(keras.optimizers.Adam(rate), "binary_crossentropy")
        weights = {c: len(fitted) / (2 * np.sum(targets[fitted] == c)) for c in (0, 1)}
        model.fit(
            training_data(fitted, train_seed + fold), epochs=args.epochs, class_weight=weights, verbose=0
        )
        per_view = [
            model.predict_on_batch(stain_free(inference_views(images[i : i + 1], size, view), args.colour))
            for i in test
        ]
        scores[test] = mean_over_views(np.concatenate(per_view).reshape(-1), views)
        per_fold.append(float(roc_auc_score(targets[test], scores[test])))
        print(
            f"fold {fold}: {len(test)} images, {len(np.unique(groups[test]))} patient groups, CNN AUC "
            f"{per_fold[-1]:.3f} (output std {scores[test].std():.3f}), colour baseline "
            f"{roc_auc_score(targets[test], colour[test]):.3f}, {time.monotonic() - started:.0f} s",
            flush=True,
        )
    result = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "pooled_auc": float(roc_auc_score(targets, scores)),
        "pooled_interval": pooled_interval(targets, scores, groups),
        "pooled_accuracy": float(np.mean((scores >= 0.5) == targets)),
        "fold_auc_mean": float(np.mean(per_fold)),
        "fold_auc_std": float(np.std(per_fold)),
        "colour_baseline_pooled_auc": float(roc_auc_score(targets, colour)),
        "spearman_with_colour": follows_colour(
            rows.assign(probability=scores), rows.assign(probability=colour)
        ),
        "seconds": round(time.monotonic() - started),
    }
    print(json.dumps(result))
    with args.log.open("a") as log:
        log.write(json.dumps(result) + "\n")
    if args.predictions:
        predicted = np.where(scores >= 0.5, "malignant", "benign")
        rows.assign(probability=scores, predicted=predicted, colour_baseline=colour).drop(
            columns=["target", "subtype", "pixel_hash"]
        ).to_csv(args.predictions, index=False)


if __name__ == "__main__":
    main()
