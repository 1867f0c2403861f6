"""Stage `evaluate`: every model and their soft-vote ensemble on the test split.

Thresholds (when not fixed) and ensemble weights are chosen on the validation split, never on
test. Writes metrics/evaluate.json (`<model>.image.*`, `<model>.patient.*`, `<model>.ci.*`,
`<model>.by_magnification.*`), plot data and PNGs under plots/evaluate/ (a Grad-CAM grid too),
metrics/report.md and metrics/model_card.md.
"""

from __future__ import annotations

import sys
from typing import Any

import keras
import numpy as np
import pandas as pd

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
from stages.modeling.input_pipeline import image_dataset
from stages.pipeline.files import write_json
from stages.pipeline.params import ENSEMBLE, MODEL_NAMES, EvaluateParams, load_params
from stages.pipeline.paths import EVALUATE_METRICS, EVALUATE_PLOTS, MODEL_CARD, REPORT, SPLIT_DIR, model_file
from stages.pipeline.stage import run_stage

BATCH_SIZE = 64


def predict(name: str, splits: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Malignant probabilities of the named model on each split, at the size it was trained on."""
    model = keras.saving.load_model(model_file(name), safe_mode=True)
    image_size = tuple(model.input_shape[1:3])
    probabilities = {}
    for split, rows in splits.items():
        data = image_dataset(
            rows["path"].tolist(), None, model_name=name, image_size=image_size, batch_size=BATCH_SIZE
        )
        probabilities[split] = model.predict(data, verbose=0).reshape(-1).astype("float64")
    keras.backend.clear_session()
    return probabilities


def evaluate_all(
    splits: dict[str, pd.DataFrame],
    probabilities: dict[str, dict[str, np.ndarray]],
    params: EvaluateParams,
    seed: int,
) -> dict[str, Any]:
    """Metrics of every model and the ensemble on test, with thresholds and weights from val."""
    val, test = splits["val"], splits["test"]
    val_targets = val["target"].to_numpy()
    val_auc = {
        name: image_metrics(val_targets, probs["val"], 0.5).get("roc_auc", 0.5)
        for name, probs in probabilities.items()
    }
    weights = ensemble_weights(val_auc, params.ensemble)
    probabilities[ENSEMBLE] = {
        split: np.sum([weights[name] * probabilities[name][split] for name in weights], axis=0)
        for split in ("val", "test")
    }
    val_auc[ENSEMBLE] = image_metrics(val_targets, probabilities[ENSEMBLE]["val"], 0.5).get("roc_auc", 0.5)
    summary: dict[str, Any] = {
        "test_images": len(test),
        "majority_baseline": majority_baseline(test),
        "ensemble_weights": weights,
    }
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
        result["val_roc_auc"] = val_auc[name]
        summary[name] = result
    return summary


def main() -> None:
    params = load_params()
    splits = {name: pd.read_csv(SPLIT_DIR / f"{name}.csv") for name in ("val", "test")}
    probabilities = {name: predict(name, splits) for name in MODEL_NAMES}
    summary = evaluate_all(splits, probabilities, params.evaluate, params.seed)
    write_json(EVALUATE_METRICS, summary)
    test_probabilities = {name: probs["test"] for name, probs in probabilities.items()}
    write_evaluation_plots(EVALUATE_PLOTS, splits["test"], test_probabilities, summary)
    write_report(REPORT, summary, EVALUATE_PLOTS, params.evaluate.confidence)
    write_gradcam_grid(
        {name: model_file(name) for name in MODEL_NAMES},
        splits["test"],
        test_probabilities[ENSEMBLE],
        {name: summary[name]["threshold"] for name in test_probabilities},
        EVALUATE_PLOTS / "gradcam.png",
    )
    write_model_card(MODEL_CARD, params, summary)
    for name in test_probabilities:
        result = summary[name]
        print(
            f"{name:>9}: image accuracy {result['image']['accuracy']:.3f}, "
            f"patient recognition rate {result['patient']['recognition_rate']:.3f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage(main)
