"""Is patch mode fast enough to cross-validate all three models? The model-side time of one
cross-validation fold (training, validation, evaluate's predictions) with the real-data recipe of
profiles/real-patches.yaml (`train.validation: none`) as a ratio against today's patch mode before
it (the README's real-data patch settings: 4 patches per image for every model, the validation
split scored every epoch, evaluate predicting validation and test).

Measured in this run, on synthetic fields of the ingested size (230x350) through the project's own
tf.data pipeline and models: seconds per training patch for each model, and seconds per inference
view (the covering grid of 96x96 patches, 12 per field). A fold's time is then these rates times
the work each recipe does on a fold of the development set (the image counts below: 5 folds of 422
images). Target: a 5-fold cross-validation of the recipe within 60 minutes on 2 cores; ratio >= 4.

    python benchmarks/patch_cv.py [--patches 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from benchmarks._data import synthetic_images  # noqa: E402
from breakhis.modeling.architectures import build_custom_cnn, build_transfer_model  # noqa: E402
from breakhis.modeling.input_pipeline import inference_dataset, training_dataset  # noqa: E402
from breakhis.modeling.views import ViewParams, views_per_image  # noqa: E402
from breakhis.pipeline.param_types import MODEL_NAMES  # noqa: E402
from breakhis.pipeline.params import Params  # noqa: E402
from breakhis.pipeline.profiles import apply, load_profile  # noqa: E402
from breakhis.pipeline.train_params import fit_settings  # noqa: E402

PATCH = (96, 96)
FIELD = (230, 350)
BATCH = 32
# one fold of the development set (422 images, 5 patient-grouped folds): images per split (the train
# split after augment's balancing)
TRAIN, VAL, TEST = 288, 65, 69  # fold 0 of seed 42
# today's patch mode: every model 4 patches per image, validation every epoch; the epochs it trained
# (early stopping on validation; the custom CNN stopped after 27 of its 30 in the fold measured)
TODAY_PATCHES = 4
TODAY_EPOCHS = {"custom": 27, "vgg19": 5, "resnet50": 8}


@dataclass(frozen=True)
class Rates:
    train: float  # seconds per training patch
    infer: float  # seconds per inference view


def build(name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name == "custom":
        model = build_custom_cnn(PATCH, [16, 32, 64, 128], 0.3, True)
    else:
        model = build_transfer_model(name, PATCH, "none", 0.3).model
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def measure(name: str, paths: list[str], labels, repeats: int) -> Rates:
    view = ViewParams("patches", 1.0, 1)
    model = build(name)
    train = training_dataset(
        paths, labels, model_name=name, image_size=PATCH, batch_size=BATCH, seed=0, cache=True, view=view
    )
    infer = inference_dataset(paths, model_name=name, image_size=PATCH, batch_size=64, cache=True, view=view)
    model.fit(train, epochs=1, verbose=0)  # warm-up: tracing, decoding into the cache
    model.predict(infer, verbose=0)
    views = len(paths) * views_per_image(FIELD, PATCH, view)
    fits, predictions = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(train, epochs=1, verbose=0)
        fits.append((time.perf_counter() - start) / len(paths))
        start = time.perf_counter()
        model.predict(infer, verbose=0)
        predictions.append((time.perf_counter() - start) / views)
    return Rates(statistics.median(fits), statistics.median(predictions))


def fold_seconds(rates: dict[str, Rates]) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """Today's and the recipe's model-side seconds for one fold, and per model."""
    grid = views_per_image(FIELD, PATCH, ViewParams("patches", 1.0, 1))
    profile = load_profile("real-patches")
    recipe = Params.model_validate(apply(Params().model_dump(mode="json"), profile.params))
    per_model = {}
    for name in MODEL_NAMES:
        rate = rates[name]
        epochs = TODAY_EPOCHS[name]
        today = epochs * (TRAIN * TODAY_PATCHES * rate.train + VAL * grid * rate.infer)
        today += (VAL + TEST) * grid * rate.infer  # evaluate: validation and test
        settings = fit_settings(recipe.train, recipe.models.of(name))
        new = settings.epochs * (TRAIN + VAL) * settings.patches_per_image * rate.train
        new += TEST * grid * rate.infer  # evaluate: test only
        per_model[name] = (today, new)
    return sum(t for t, _ in per_model.values()), sum(n for _, n in per_model.values()), per_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patches", type=int, default=96, help="fields whose patches are timed, per model")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = synthetic_images(Path(tmp), args.patches, FIELD)
        rates = {name: measure(name, paths, labels, args.repeats) for name in MODEL_NAMES}
    for name, rate in rates.items():
        print(
            f"{name:>9}: {1 / rate.train:6.1f} training patches/s, {1 / rate.infer:6.1f} inference views/s",
            flush=True,
        )
    today, new, per_model = fold_seconds(rates)
    for name, (old, recipe) in per_model.items():
        print(f"{name:>9}: today's patch mode {old / 60:5.1f} min a fold, the recipe {recipe / 60:5.1f}")
    print(f"one fold, model-side: today's patch mode {today / 60:.1f} min, the recipe {new / 60:.1f} min")
    print(f"5 folds: today's {5 * today / 60:.0f} min, the recipe {5 * new / 60:.0f} min (without ingest,")
    print(f"split, augment and the colour baseline); ratio {today / new:.2f} (target >= 4)")


if __name__ == "__main__":
    main()
