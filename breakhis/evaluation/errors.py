"""What went wrong, for the report: whether the models ever saw a real slide, validation beside
test, the images each model gets wrong per subtype, the call on each test patient, the most
confident mistakes (for the Grad-CAM error gallery), and sensitivity and specificity against the
threshold.

Read from what evaluate already wrote (evaluate.json's summary and the per-image plot data under
plots/evaluate/: `predictions/<model>.csv`, `subtype_confusion/<model>.csv`, `roc/<model>.csv`), so
the report says nothing those files do not hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from breakhis.evaluation.decision import RunDecision
from breakhis.evaluation.metrics import per_patient
from breakhis.evaluation.tables import interval, number, table
from breakhis.pipeline.param_types import ENSEMBLE, EVALUATED
from breakhis.pipeline.task import BINARY_CLASSES, MALIGNANT_SUBTYPES, SUBTYPE_CLASSES

ERROR_GALLERY = "errors.png"  # the most confident mistakes with their Grad-CAM, under plots/evaluate/
THRESHOLD_FIGURE = "threshold.png"  # sensitivity and specificity against the threshold


def synthetic_warning(synthetic_models: list[str]) -> list[str]:
    """A loud first line when any model was trained on the synthetic data (its description says so)."""
    if not synthetic_models:
        return []
    return [
        f"> **WARNING: {', '.join(synthetic_models)} never saw a real slide**: trained on the "
        "synthetic BreakHis (`data.source: synthetic`), so nothing here says how they would do on "
        "real tissue. Use it to check the pipeline, not the models.",
        "",
    ]


def validation_lines(summary: dict[str, Any], confidence: float) -> list[str]:
    """ROC AUC on validation (where thresholds and weights were chosen) beside test: a large drop
    says the choices, or the model, fit the validation patients."""
    rows = []
    for model in EVALUATED:
        entry = summary.get(model, {})
        if entry.get("val_roc_auc") is None or "roc_auc" not in entry.get("image", {}):
            continue
        test, ci = entry["image"]["roc_auc"], entry.get("ci", {}).get("roc_auc")
        rows.append(
            [
                model,
                number(entry["val_roc_auc"]),
                number(test),
                interval(ci["low"], ci["high"]) if ci else "",
                number(test - entry["val_roc_auc"], sign=True),
            ]
        )
    if not rows:
        return []
    return [
        "**Validation beside test** (ROC AUC; a large drop says the model, or what was chosen on "
        f"validation, fits the validation patients; test interval at {confidence:.0%} over patient "
        "groups):",
        "",
        *table(["Model", "Validation", "Test", "Test interval", "Test - validation"], rows, "lrrlr"),
        "",
    ]


def read_model_csvs(plots_dir: Path, folder: str) -> dict[str, pd.DataFrame]:
    return {
        model: pd.read_csv(path)
        for model in EVALUATED
        if (path := plots_dir / folder / f"{model}.csv").is_file()
    }


def subtype_error_lines(plots_dir: Path) -> list[str]:
    """Binary task: how many test images of each subtype each model calls the wrong class (from
    `subtype_confusion/<model>.csv`: actual subtype, predicted class)."""
    frames = read_model_csvs(plots_dir, "subtype_confusion")
    frames = {m: f for m, f in frames.items() if set(f["predicted"]) <= set(BINARY_CLASSES)}
    if not frames:
        return []
    any_frame = next(iter(frames.values()))
    present = [code for code in SUBTYPE_CLASSES if code in set(any_frame["actual"])]
    rows = []
    for code in present:
        truth = "malignant" if code in MALIGNANT_SUBTYPES else "benign"
        images = int((any_frame["actual"] == code).sum())
        wrong = [int(((f["actual"] == code) & (f["predicted"] != truth)).sum()) for f in frames.values()]
        rows.append([code, truth, str(images), *(f"{n} ({n / images:.0%})" for n in wrong)])
    return [
        "**Errors per subtype** (test images of each subtype called the wrong class):",
        "",
        *table(["Subtype", "Class", "Images", *frames], rows, "llr" + "r" * len(frames)),
        "",
    ]


def patient_lines(
    plots_dir: Path, summary: dict[str, Any], decision: RunDecision, model: str = ENSEMBLE
) -> list[str]:
    """One row per test patient for `model`: images, mean probability, the call at its threshold
    (the run's `decision`), the truth, and the fraction of images it classifies correctly."""
    path = plots_dir / "predictions" / f"{model}.csv"
    if not path.is_file() or model not in summary:
        return []
    frame = pd.read_csv(path)
    threshold = decision.threshold(model)
    targets = (frame["actual"] == "malignant").astype(int).to_numpy()
    patients = per_patient(frame["patient"].to_numpy(), targets, frame["probability"].to_numpy(), threshold)
    images = frame["patient"].astype(str).value_counts().to_dict()
    rows = []
    for patient, entry in patients.sort_values("probability").iterrows():
        call = BINARY_CLASSES[int(entry["probability"] >= threshold)]
        truth = BINARY_CLASSES[int(entry["target"])]
        rows.append(
            [
                f"`{patient}`",
                str(images[str(patient)]),
                number(entry["probability"]),
                call if call == truth else f"**{call}**",
                truth,
                number(entry["correct"], 2),
            ]
        )
    wrong = sum(1 for row in rows if row[3].startswith("**"))
    return [
        f"**Per patient, {model}** (threshold {number(threshold, 2)}; {wrong} of {len(rows)} test "
        "patients called wrong, in bold):",
        "",
        *table(["Patient", "Images", "Mean probability", "Call", "Truth", "Images right"], rows, "lrrllr"),
        "",
    ]


def confident_mistakes(
    targets: np.ndarray, probabilities: np.ndarray, threshold: float, count: int = 6
) -> list[tuple[int, str]]:
    """The `count` wrongly classified images farthest from the threshold, most confident first:
    (row position, caption) pairs, as the Grad-CAM grid takes them."""
    predicted = (probabilities >= threshold).astype(int)
    wrong = np.flatnonzero(predicted != targets)
    margin = np.abs(probabilities[wrong] - threshold)
    order = wrong[np.lexsort((wrong, -margin))][:count]
    return [(int(i), f"{BINARY_CLASSES[targets[i]]} called {BINARY_CLASSES[predicted[i]]}") for i in order]


def sensitivity_specificity(roc: pd.DataFrame) -> pd.DataFrame:
    """Sensitivity and specificity at each threshold of a ROC curve's points (`roc/<model>.csv`)."""
    return pd.DataFrame(
        {"threshold": roc["threshold"], "sensitivity": roc["tpr"], "specificity": 1 - roc["fpr"]}
    ).sort_values("threshold", kind="stable")


def gallery_lines(link: Path, plots_dir: Path, model: str = ENSEMBLE) -> list[str]:
    """The error gallery and the threshold figure, where evaluate wrote them."""
    lines = []
    if (plots_dir / THRESHOLD_FIGURE).is_file():
        lines += [
            "**Sensitivity and specificity against the threshold** (test split; sensitivity solid, "
            "specificity dashed, a dot at each model's threshold):",
            "",
            f"![Sensitivity and specificity against the threshold]({link / THRESHOLD_FIGURE})",
            "",
        ]
    if (plots_dir / ERROR_GALLERY).is_file():
        lines += [
            f"**The most confident mistakes of the {model}**, with each model's Grad-CAM and probability:",
            "",
            f"![The most confident mistakes]({link / ERROR_GALLERY})",
            "",
        ]
    return lines
