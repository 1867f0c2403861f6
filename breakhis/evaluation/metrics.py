"""Image-level and patient-level metrics of binary predictions (1 = malignant), the headline
metrics every document shows (`HEADLINE`), the ensemble's weights, and
evaluate's patient-group bootstrap intervals.

Patient level follows BreakHis practice: the patient recognition rate is the mean over patients
of the fraction of that patient's images classified correctly; patient accuracy classifies each
patient by the mean probability of their images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from breakhis.evaluation.bootstrap import Draw, GroupBootstrap, Interval, resampling_units
from breakhis.evaluation.tables import number


@dataclass(frozen=True)
class Metric:
    """A headline metric: where an evaluate.json entry holds it, and how documents name it."""

    level: str  # its section of an evaluate.json entry: `image`, `patient`, `subtype.image`, ...
    key: str  # its key in that section
    name: str  # its flat name: evaluate.json's `ci` and majority baseline, the paired comparison
    title: str  # its column title in tables
    label: str  # its name in prose and in rows (lower case)

    @property
    def column(self) -> str:
        """Its column in cross-validation tables and summaries: `image_roc_auc`."""
        return f"{self.level.replace('.', '_')}_{self.key}"

    @property
    def path(self) -> str:
        """Its dotted key in an evaluate.json entry (as `dvc metrics diff` names it): `image.roc_auc`."""
        return f"{self.level}.{self.key}"

    def value_in(self, entry: Mapping[str, Any]) -> Any:
        """Its value in an evaluate.json entry, or None."""
        section: Any = entry
        for part in self.level.split("."):
            section = section.get(part) if isinstance(section, Mapping) else None
        return section.get(self.key) if isinstance(section, Mapping) else None


ACCURACY = Metric("image", "accuracy", "image_accuracy", "Accuracy", "accuracy")
BALANCED_ACCURACY = Metric(
    "image", "balanced_accuracy", "balanced_accuracy", "Balanced acc.", "balanced accuracy"
)
SENSITIVITY = Metric("image", "recall", "recall", "Sensitivity", "sensitivity")
SPECIFICITY = Metric("image", "specificity", "specificity", "Specificity", "specificity")
ROC_AUC = Metric("image", "roc_auc", "roc_auc", "ROC AUC", "ROC AUC")
RECOGNITION_RATE = Metric(
    "patient",
    "recognition_rate",
    "patient_recognition_rate",
    "Patient recognition rate",
    "patient recognition rate",
)
PATIENT_ACCURACY = Metric("patient", "accuracy", "patient_accuracy", "Patient accuracy", "patient accuracy")

# the headline metrics: every model's row in metrics/report.md and metrics/model_card.md
HEADLINE = (
    ACCURACY,
    BALANCED_ACCURACY,
    SENSITIVITY,
    SPECIFICITY,
    ROC_AUC,
    RECOGNITION_RATE,
    PATIENT_ACCURACY,
)
# across runs: cross-validation summaries and the PR comment's unpaired changes
ACROSS_RUNS = (ACCURACY, BALANCED_ACCURACY, ROC_AUC, RECOGNITION_RATE, PATIENT_ACCURACY)
# paired on the test images of two runs (breakhis.evaluation.comparison) and in the seed spread
PAIRED = (ACCURACY, BALANCED_ACCURACY, ROC_AUC, RECOGNITION_RATE)


def _ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None (JSON null, "n/a" in reports) when it is undefined."""
    return float(numerator / denominator) if denominator else None


def image_metrics(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """Threshold metrics, confusion counts, and ROC/PR AUC (omitted when only one class is present).

    A metric whose denominator is empty is None, never a made-up 0: specificity without benign
    images, sensitivity without malignant ones, precision without positive predictions; balanced
    accuracy needs both classes.
    """
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = (int(n) for n in skm.confusion_matrix(targets, predicted, labels=[0, 1]).ravel())
    recall, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    result: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(targets, predicted)),
        "balanced_accuracy": (recall + specificity) / 2
        if recall is not None and specificity is not None
        else None,
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }
    if len(np.unique(targets)) == 2:
        result["roc_auc"] = float(skm.roc_auc_score(targets, probabilities))
        result["pr_auc"] = float(skm.average_precision_score(targets, probabilities))
    return {**result, "tn": tn, "fp": fp, "fn": fn, "tp": tp}


def per_patient(
    patients: np.ndarray, targets: np.ndarray, probabilities: np.ndarray, threshold: float
) -> pd.DataFrame:
    """One row per patient: label, mean probability, fraction of images classified correctly. Shared
    by CV's pooled intervals (cross_validation.pooled); predict's per-patient CSV
    (modeling.per_patient) has no labels, so it reports the fraction predicted malignant instead."""
    frame = pd.DataFrame({"patient": patients, "target": targets, "probability": probabilities})
    frame["correct"] = (frame["probability"] >= threshold).astype(int) == frame["target"]
    return frame.groupby("patient", sort=True).agg(
        target=("target", "first"), probability=("probability", "mean"), correct=("correct", "mean")
    )


def patient_metrics(
    patients: pd.Series | np.ndarray, targets: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, float]:
    table = per_patient(np.asarray(patients), targets, probabilities, threshold)
    predicted = (table["probability"] >= threshold).astype(int)
    return {
        "recognition_rate": float(table["correct"].mean()),
        "accuracy": float((predicted == table["target"]).mean()),
        "patients": len(table),
    }


def evaluate_predictions(
    rows: pd.DataFrame, probabilities: np.ndarray, threshold: float
) -> dict[str, object]:
    """Image and patient metrics overall and per magnification, for rows of a split."""
    targets = rows["target"].to_numpy()
    patients = rows["patient"].to_numpy()
    result: dict[str, object] = {
        "threshold": float(threshold),
        "image": image_metrics(targets, probabilities, threshold),
        "patient": patient_metrics(patients, targets, probabilities, threshold),
    }
    by_magnification = {}
    for magnification in sorted(rows["magnification"].unique()):
        mask = (rows["magnification"] == magnification).to_numpy()
        image = image_metrics(targets[mask], probabilities[mask], threshold)
        patient = patient_metrics(patients[mask], targets[mask], probabilities[mask], threshold)
        by_magnification[f"{magnification}X"] = {
            "accuracy": image["accuracy"],
            "balanced_accuracy": image["balanced_accuracy"],
            **({"roc_auc": image["roc_auc"]} if "roc_auc" in image else {}),
            "patient_recognition_rate": patient["recognition_rate"],
            "patient_accuracy": patient["accuracy"],
        }
    result["by_magnification"] = by_magnification
    return result


def bootstrap_intervals(
    rows: pd.DataFrame,
    probabilities: np.ndarray,
    threshold: float,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, Interval]:
    """Percentile intervals of every headline rate (evaluate.json's `ci`: image accuracy, balanced
    accuracy, sensitivity, specificity, ROC AUC, patient recognition rate and patient accuracy),
    resampling whole patient groups (breakhis.evaluation.bootstrap; patients when the rows have no
    `patient_group`). A rate undefined on a draw (sensitivity without malignant images) is left out
    of that draw."""
    patients = rows["patient"].to_numpy()
    targets = rows["target"].to_numpy()
    predicted = (probabilities >= threshold).astype(int)
    correct = predicted == targets

    def statistics(draw: Draw) -> dict[str, float | None]:
        index = draw.rows
        # each drawn copy of a patient counts once per draw, as in the recognition rate of the sample
        by_patient = pd.DataFrame(
            {"correct": correct[index], "target": targets[index], "probability": probabilities[index]}
        ).groupby([patients[index], draw.copies])
        means = by_patient.mean()
        image = image_metrics(targets[index], probabilities[index], threshold)
        return {
            ACCURACY.name: float(correct[index].mean()),
            BALANCED_ACCURACY.name: image["balanced_accuracy"],
            SENSITIVITY.name: image["recall"],
            SPECIFICITY.name: image["specificity"],
            ROC_AUC.name: image.get("roc_auc"),
            RECOGNITION_RATE.name: float(means["correct"].mean()),
            PATIENT_ACCURACY.name: float(
                ((means["probability"] >= threshold).astype(int) == means["target"]).mean()
            ),
        }

    bootstrap = GroupBootstrap(resampling_units(rows))
    return bootstrap.intervals(statistics, resamples=resamples, confidence=confidence, seed=seed)


def majority_baseline(rows: pd.DataFrame, train: pd.DataFrame) -> dict[str, float | str]:
    """Accuracy on `rows` of always predicting the most frequent class of the train rows (the prior a
    model can learn; never the test labels), per image and per patient."""
    majority = int(train["target"].mean() >= 0.5)
    patients = rows.groupby("patient")["target"].first()
    return {
        "class": ("benign", "malignant")[majority],
        "image_accuracy": float((rows["target"] == majority).mean()),
        "patient_accuracy": float((patients == majority).mean()),
    }


def majority_cells(baseline: Mapping[str, Any]) -> list[str]:
    """The table cells, under the HEADLINE columns, of always predicting the majority class
    (evaluate.json's `majority_baseline`): balanced accuracy and ROC AUC at chance, sensitivity 1
    and specificity 0 when the class is malignant (the reverse when benign); blank where the entry
    does not say."""
    malignant = {"malignant": 1.0, "benign": 0.0}.get(str(baseline.get("class")))
    values = {
        ACCURACY: baseline.get("image_accuracy"),
        BALANCED_ACCURACY: 0.5,
        SENSITIVITY: malignant,
        SPECIFICITY: None if malignant is None else 1.0 - malignant,
        ROC_AUC: 0.5,
        PATIENT_ACCURACY: baseline.get("patient_accuracy"),
    }
    return ["" if values.get(metric) is None else number(values[metric]) for metric in HEADLINE]


def ensemble_weights(val_aucs: dict[str, float], method: Literal["mean", "val_auc"]) -> dict[str, float]:
    """Soft-vote weights: equal, or proportional to each model's validation ROC AUC above chance."""
    if method == "mean":
        return {name: 1 / len(val_aucs) for name in val_aucs}
    margins = {name: max(auc - 0.5, 0.0) for name, auc in val_aucs.items()}
    total = sum(margins.values())
    if total == 0:  # no model beats chance on validation: fall back to equal weights
        return {name: 1 / len(val_aucs) for name in val_aucs}
    return {name: margin / total for name, margin in margins.items()}
