"""Stage `evaluate`: every model and their soft-vote ensemble on the test split.

Writes metrics/evaluate.json, plot data and PNGs under plots/evaluate/ (Grad-CAM grid included),
metrics/report.md and metrics/model_card.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from stages.gradcam import write_gradcam_grid
from stages.input_pipeline import image_dataset
from stages.metrics import evaluate_predictions, majority_baseline
from stages.model_card import MODEL_CARD_FILE, write_model_card
from stages.models import MODEL_NAMES
from stages.params import load_params
from stages.plots import CLASS_NAMES, confusion_png, curves_png, precision_recall_points, roc_points
from stages.report import write_report
from stages.runner import run_stage, write_json

TEST_ROWS = Path("data/split/test.csv")
PLOTS_DIR = Path("plots/evaluate")
METRICS_FILE = Path("metrics/evaluate.json")
REPORT_FILE = Path("metrics/report.md")
BATCH_SIZE = 64


def predict(name: str, rows: pd.DataFrame) -> np.ndarray:
    """Malignant probabilities of the named model, at the image size it was trained on."""
    model = keras.saving.load_model(Path("models") / f"{name}.keras", safe_mode=True)
    image_size = tuple(model.input_shape[1:3])
    data = image_dataset(
        rows["path"].tolist(), None, model_name=name, image_size=image_size, batch_size=BATCH_SIZE
    )
    probabilities = model.predict(data, verbose=0).reshape(-1)
    keras.backend.clear_session()
    return probabilities


def write_plots(rows: pd.DataFrame, probabilities: dict[str, np.ndarray], threshold: float) -> None:
    targets = rows["target"].to_numpy()
    roc, precision_recall = {}, {}
    for name, probs in probabilities.items():
        roc[name] = roc_points(targets, probs)
        precision_recall[name] = precision_recall_points(targets, probs)
        predicted = (probs >= threshold).astype(int)
        for folder, frame in (
            ("roc", roc[name]),
            ("precision_recall", precision_recall[name]),
            (
                "predictions",
                rows[["filename", "patient", "magnification"]].assign(
                    actual=[CLASS_NAMES[t] for t in targets],
                    predicted=[CLASS_NAMES[p] for p in predicted],
                    probability=probs.round(6),
                ),
            ),
        ):
            (PLOTS_DIR / folder).mkdir(parents=True, exist_ok=True)
            frame.to_csv(PLOTS_DIR / folder / f"{name}.csv", index=False)
        counts = (
            pd.crosstab(targets, predicted).reindex(index=[0, 1], columns=[0, 1], fill_value=0).to_numpy()
        )
        confusion_png(counts, f"{name} (test, threshold {threshold})", PLOTS_DIR / f"confusion_{name}.png")
    curves_png(roc, "fpr", "tpr", "ROC, test split", PLOTS_DIR / "roc.png")
    curves_png(
        precision_recall,
        "recall",
        "precision",
        "Precision-recall, test split",
        PLOTS_DIR / "precision_recall.png",
    )


def main() -> None:
    params = load_params()
    threshold = params.evaluate.threshold
    rows = pd.read_csv(TEST_ROWS)  # RangeIndex: metrics index predictions by row position
    probabilities = {}
    for name in MODEL_NAMES:
        probabilities[name] = predict(name, rows)
    probabilities["ensemble"] = np.mean(list(probabilities.values()), axis=0)

    results = {name: evaluate_predictions(rows, probs, threshold) for name, probs in probabilities.items()}
    summary = {
        "threshold": threshold,
        "test_images": len(rows),
        "majority_baseline": majority_baseline(rows),
        **results,
    }
    write_json(METRICS_FILE, summary)
    write_plots(rows, probabilities, threshold)
    write_report(REPORT_FILE, summary, PLOTS_DIR)
    models = {name: Path("models") / f"{name}.keras" for name in MODEL_NAMES}
    write_gradcam_grid(models, rows, probabilities["ensemble"], threshold, PLOTS_DIR / "gradcam.png")
    write_model_card(MODEL_CARD_FILE, params, summary)
    for name, result in results.items():
        print(
            f"{name:>9}: image accuracy {result['image']['accuracy']:.3f}, "
            f"patient recognition rate {result['patient']['recognition_rate']:.3f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage(main)
