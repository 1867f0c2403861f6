"""Stage `evaluate`: every model and their soft-vote ensemble on the test split.

Thresholds (when not fixed) and ensemble weights are chosen on the validation split, never on
test. Writes metrics/evaluate.json (`<model>.image.*`, `<model>.patient.*`, `<model>.ci.*`,
`<model>.by_magnification.*`), plot data and PNGs under plots/evaluate/ (a Grad-CAM grid too),
metrics/report.md and metrics/model_card.md.
"""

from __future__ import annotations

import sys
from typing import Any

from stages.pipeline.logs import quiet_native_logs

if __name__ == "__main__":  # before TensorFlow's import below: its C++ start-up chatter is dropped
    quiet_native_logs()

import keras
import numpy as np
import pandas as pd

from stages.evaluation.baselines import (
    collapse_warnings,
    colour_baseline_probabilities,
    output_spread,
    paired_auc_difference,
)
from stages.evaluation.calibration import (
    apply_temperature,
    calibration_metrics,
    fit_temperature,
    output_threshold,
)
from stages.evaluation.card import write_model_card
from stages.evaluation.metrics import (
    bootstrap_intervals,
    choose_threshold,
    ensemble_weights,
    evaluate_predictions,
    image_metrics,
    majority_baseline,
)
from stages.evaluation.plots import write_evaluation_plots
from stages.evaluation.report import write_report
from stages.modeling.gradcam import write_gradcam_grid
from stages.modeling.input_pipeline import field_size, image_dataset
from stages.modeling.views import ViewParams, mean_over_views, view_params, views_per_image
from stages.pipeline.files import read_table, write_json
from stages.pipeline.params import COLOUR_BASELINE, ENSEMBLE, MODEL_NAMES, EvaluateParams, load_params
from stages.pipeline.paths import EVALUATE_METRICS, EVALUATE_PLOTS, MODEL_CARD, REPORT, SPLIT_DIR, model_file
from stages.pipeline.stage import run_stage

BATCH_SIZE = 64
SPLIT_COLUMNS = ("path", "filename", "target", "patient", "patient_group", "magnification")


def predict(name: str, splits: dict[str, pd.DataFrame], view: ViewParams) -> dict[str, np.ndarray]:
    """Malignant probabilities of the named model on each split, one per image: the mean over the
    model's views of the image (the field, or the grid of patches; with test-time flips)."""
    model = keras.saving.load_model(model_file(name), safe_mode=True)
    image_size = (int(model.input_shape[1]), int(model.input_shape[2]))
    probabilities = {}
    for split, rows in splits.items():
        paths = rows["path"].tolist()
        data = image_dataset(
            paths, None, model_name=name, image_size=image_size, batch_size=BATCH_SIZE, view=view
        )
        views = views_per_image(field_size(paths[0]), image_size, view)
        probabilities[split] = mean_over_views(model.predict(data, verbose=0).reshape(-1), views)
    keras.backend.clear_session()
    return probabilities


def soft_vote(
    probabilities: dict[str, dict[str, np.ndarray]], weights: dict[str, float]
) -> dict[str, np.ndarray]:
    return {
        split: np.sum([weights[name] * probabilities[name][split] for name in weights], axis=0)
        for split in ("val", "test")
    }


def evaluate_all(
    splits: dict[str, pd.DataFrame],
    probabilities: dict[str, dict[str, np.ndarray]],
    params: EvaluateParams,
    seed: int,
) -> dict[str, Any]:
    """Metrics of every model and the ensemble on test, with temperatures, thresholds and weights
    from val. `probabilities` (model -> split -> outputs) gains the ensemble's and the colour
    baseline's, and holds the calibrated outputs when `params.calibration` is `temperature`."""
    train, val, test = splits["train"], splits["val"], splits["test"]
    val_targets = val["target"].to_numpy()
    uncalibrated = {name: dict(probs) for name, probs in probabilities.items()}
    temperatures = {}
    if params.calibration == "temperature":
        for name, probs in probabilities.items():
            temperatures[name] = fit_temperature(val_targets, probs["val"])
            probabilities[name] = {
                split: apply_temperature(p, temperatures[name]) for split, p in probs.items()
            }
    val_auc: dict[str, float] = {
        name: image_metrics(val_targets, probs["val"], 0.5).get("roc_auc", 0.5)
        for name, probs in probabilities.items()
    }
    weights = ensemble_weights(val_auc, params.ensemble)
    probabilities[ENSEMBLE] = soft_vote(probabilities, weights)
    uncalibrated[ENSEMBLE] = soft_vote(uncalibrated, weights)
    val_auc[ENSEMBLE] = image_metrics(val_targets, probabilities[ENSEMBLE]["val"], 0.5).get("roc_auc", 0.5)
    summary: dict[str, Any] = {
        "test_images": len(test),
        "majority_baseline": majority_baseline(test, train),
        "ensemble_weights": weights,
    }
    probabilities[COLOUR_BASELINE] = colour_baseline_probabilities(train, {"val": val, "test": test})
    for name, probs in probabilities.items():
        if isinstance(params.threshold, float):
            threshold = params.threshold
        else:
            threshold = choose_threshold(val_targets, probs["val"], params.threshold)
        result = evaluate_predictions(test, probs["test"], threshold)
        result["ci"] = bootstrap_intervals(
            test,
            probs["test"],
            threshold,
            resamples=params.bootstrap_resamples,
            confidence=params.confidence,
            seed=seed,
        )
        result["val_roc_auc"] = (  # the colour baseline is not in the ensemble's val_auc
            val_auc[name] if name in val_auc else image_metrics(val_targets, probs["val"], 0.5).get("roc_auc")
        )
        result["output"] = output_spread(probs["test"])
        calibration: dict[str, Any] = calibration_metrics(test["target"].to_numpy(), probs["test"])
        if name in temperatures:
            calibration["temperature"] = temperatures[name]
        if temperatures and name in uncalibrated:
            calibration["uncalibrated"] = calibration_metrics(
                test["target"].to_numpy(), uncalibrated[name]["test"]
            )
        result["calibration"] = calibration
        if name != COLOUR_BASELINE:
            result["vs_colour_baseline"] = paired_auc_difference(
                test,
                probs["test"],
                probabilities[COLOUR_BASELINE]["test"],
                resamples=params.bootstrap_resamples,
                confidence=params.confidence,
                seed=seed,
            )
        summary[name] = result
    return summary


def main() -> None:
    params = load_params()
    splits = {
        name: read_table(SPLIT_DIR / f"{name}.csv", SPLIT_COLUMNS, "split")
        for name in ("train", "val", "test")
    }
    view = view_params(params.train, test_time_flips=params.evaluate.test_time_flips)
    scored = {name: splits[name] for name in ("val", "test")}
    probabilities = {name: predict(name, scored, view) for name in MODEL_NAMES}
    summary = evaluate_all(splits, probabilities, params.evaluate, params.seed)
    temperatures = {name: summary[name]["calibration"].get("temperature") for name in MODEL_NAMES}
    write_json(EVALUATE_METRICS, summary)
    test_probabilities = {name: probs["test"] for name, probs in probabilities.items()}
    write_evaluation_plots(EVALUATE_PLOTS, splits["test"], test_probabilities, summary)
    write_report(REPORT, summary, EVALUATE_PLOTS, params.evaluate.confidence)
    write_gradcam_grid(
        {name: model_file(name) for name in MODEL_NAMES},
        splits["test"],
        test_probabilities[ENSEMBLE],
        {name: output_threshold(summary[name]["threshold"], temperatures.get(name)) for name in MODEL_NAMES}
        | {ENSEMBLE: summary[ENSEMBLE]["threshold"]},
        EVALUATE_PLOTS / "gradcam.png",
        view=view,
    )
    write_model_card(MODEL_CARD, params, summary)
    for warning in collapse_warnings(summary):
        print(f"warning: {warning}", file=sys.stderr)
    for name in test_probabilities:
        result = summary[name]
        print(
            f"{name:>9}: image accuracy {result['image']['accuracy']:.3f}, "
            f"patient recognition rate {result['patient']['recognition_rate']:.3f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage(main)
