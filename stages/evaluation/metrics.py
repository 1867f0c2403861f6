"""Image-level and patient-level metrics of binary predictions (1 = malignant), decision
thresholds chosen on validation data, and patient-resampled bootstrap confidence intervals.

Patient level follows BreakHis practice: the patient recognition rate is the mean over patients
of the fraction of that patient's images classified correctly; patient accuracy classifies each
patient by the mean probability of their images.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm


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
    """One row per patient: label, mean probability, fraction of images classified correctly."""
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


def choose_threshold(
    targets: np.ndarray, probabilities: np.ndarray, criterion: Literal["youden", "f1"]
) -> float:
    """The threshold that maximises the criterion on these (validation) predictions.

    Youden's J (sensitivity + specificity - 1) is 2 x balanced accuracy - 1: both pick the same
    threshold. Ties resolve to the lowest qualifying threshold.
    """
    candidates = np.unique(np.clip(probabilities, 0.0, 1.0))
    if len(np.unique(targets)) < 2:
        raise ValueError("the validation split has one class only: a threshold cannot be chosen on it")
    scores = []
    for threshold in candidates:
        predicted = (probabilities >= threshold).astype(int)
        if criterion == "youden":
            scores.append(skm.balanced_accuracy_score(targets, predicted))
        else:
            scores.append(skm.f1_score(targets, predicted, zero_division=0))
    return float(candidates[int(np.argmax(scores))])


def resampling_groups(rows: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each unit a bootstrap draws: patient groups (the split's unit) when the rows
    have `patient_group`, else patients."""
    column = "patient_group" if "patient_group" in rows else "patient"
    units = rows[column].astype(str).to_numpy()
    return [
        np.asarray(index)
        for index in pd.Series(np.arange(len(rows))).groupby(units, sort=True).indices.values()
    ]


def bootstrap_intervals(
    rows: pd.DataFrame,
    probabilities: np.ndarray,
    threshold: float,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict[str, float | int]]:
    """Percentile intervals of image accuracy, ROC AUC and patient recognition rate, resampling
    whole patient groups (the split's unit; patients when the rows have no `patient_group`) with
    replacement: images of one patient, and patients of one slide root, are not independent."""
    patients = rows["patient"].to_numpy()
    targets = rows["target"].to_numpy()
    groups = resampling_groups(rows)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {"image_accuracy": [], "roc_auc": [], "patient_recognition_rate": []}
    correct = (probabilities >= threshold).astype(int) == targets
    for _ in range(resamples):
        chosen = rng.integers(len(groups), size=len(groups))
        index = np.concatenate([groups[i] for i in chosen])
        samples["image_accuracy"].append(float(correct[index].mean()))
        # each drawn copy of a patient counts once per draw, as in the recognition rate of the sample
        drawn = np.concatenate([np.full(len(groups[i]), n) for n, i in enumerate(chosen)])
        rates = pd.Series(correct[index]).groupby([patients[index], drawn]).mean()
        samples["patient_recognition_rate"].append(float(rates.mean()))
        if len(np.unique(targets[index])) == 2:
            samples["roc_auc"].append(float(skm.roc_auc_score(targets[index], probabilities[index])))
    return {name: percentile_interval(values, confidence) for name, values in samples.items() if values}


def percentile_interval(values: list[float], confidence: float) -> dict[str, float | int]:
    """The central `confidence` interval of bootstrap values, and how many resamples it rests on
    (resamples that drew one class only have no ROC AUC and are left out)."""
    tail = (1 - confidence) / 2 * 100
    return {
        "low": float(np.percentile(values, tail)),
        "high": float(np.percentile(values, 100 - tail)),
        "resamples": len(values),
    }


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


def ensemble_weights(val_aucs: dict[str, float], method: Literal["mean", "val_auc"]) -> dict[str, float]:
    """Soft-vote weights: equal, or proportional to each model's validation ROC AUC above chance."""
    if method == "mean":
        return {name: 1 / len(val_aucs) for name in val_aucs}
    margins = {name: max(auc - 0.5, 0.0) for name, auc in val_aucs.items()}
    total = sum(margins.values())
    if total == 0:  # no model beats chance on validation: fall back to equal weights
        return {name: 1 / len(val_aucs) for name in val_aucs}
    return {name: margin / total for name, margin in margins.items()}
