"""Image-level and patient-level metrics of binary predictions (1 = malignant).

Patient level follows BreakHis practice: the patient recognition rate is the mean over patients
of the fraction of that patient's images classified correctly; patient accuracy classifies each
patient by the mean probability of their images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def image_metrics(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(targets, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": float(skm.accuracy_score(targets, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(targets, predicted)),
        "precision": float(skm.precision_score(targets, predicted, zero_division=0)),
        "recall": float(skm.recall_score(targets, predicted, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
        "f1": float(skm.f1_score(targets, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(targets, probabilities)),
        "pr_auc": float(skm.average_precision_score(targets, probabilities)),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }


def patient_metrics(
    patients: pd.Series, targets: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, float]:
    frame = pd.DataFrame({"patient": patients.to_numpy(), "target": targets, "probability": probabilities})
    frame["correct"] = (frame["probability"] >= threshold).astype(int) == frame["target"]
    per_patient = frame.groupby("patient").agg(
        target=("target", "first"), probability=("probability", "mean"), correct=("correct", "mean")
    )
    return {
        "recognition_rate": float(per_patient["correct"].mean()),
        "accuracy": float(
            ((per_patient["probability"] >= threshold).astype(int) == per_patient["target"]).mean()
        ),
        "patients": len(per_patient),
    }


def evaluate_predictions(
    rows: pd.DataFrame, probabilities: np.ndarray, threshold: float
) -> dict[str, object]:
    """Image and patient metrics overall and per magnification, for rows of a split."""
    targets = rows["target"].to_numpy()
    result: dict[str, object] = {
        "image": image_metrics(targets, probabilities, threshold),
        "patient": patient_metrics(rows["patient"], targets, probabilities, threshold),
    }
    by_magnification = {}
    for magnification, group in rows.groupby("magnification"):
        index = group.index.to_numpy()
        mag_targets = targets[index]
        predicted = (probabilities[index] >= threshold).astype(int)
        by_magnification[f"{magnification}X"] = {
            "accuracy": float(skm.accuracy_score(mag_targets, predicted)),
            "patient_recognition_rate": patient_metrics(
                group["patient"], mag_targets, probabilities[index], threshold
            )["recognition_rate"],
        }
    result["by_magnification"] = by_magnification
    return result


def majority_baseline(rows: pd.DataFrame) -> dict[str, float]:
    """Accuracy of always predicting the most frequent class of these rows, per image and per patient."""
    patients = rows.groupby("patient")["target"].first()
    return {
        "image_accuracy": float(max(rows["target"].mean(), 1 - rows["target"].mean())),
        "patient_accuracy": float(max(patients.mean(), 1 - patients.mean())),
    }
