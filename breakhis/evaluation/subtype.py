"""Metrics of the eight-subtype task (`task: subtype`), beside the binary ones derived from it.

A subtype model outputs one probability per subtype (breakhis.pipeline.task: SUBTYPE_CLASSES order);
its subtype call is the most probable one. Image level: accuracy, balanced accuracy (the mean
recall over the subtypes present in the rows), macro-F1 over those subtypes, one-vs-rest ROC AUC
averaged over them (macro), and per-subtype precision, recall and F1. Patient level: every patient
has one subtype; the patient's call is the most probable subtype of the mean of its images'
probabilities. Intervals resample whole patient groups, as for the binary metrics
(breakhis.evaluation.bootstrap). Baselines: the majority subtype of the train rows, and the colour
baseline as a multinomial logistic regression (breakhis.evaluation.baselines). The 8x8 confusion
matrix is plot data (plots/evaluate/subtype_confusion/, breakhis.evaluation.plots), not a metric.

Metrics are averaged over the subtypes present in the scored rows (a subtype with no test image
has no recall); `per_class` lists all eight, with null where a value is undefined.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from breakhis.evaluation.bootstrap import (
    Draw,
    GroupBootstrap,
    Interval,
    Statistics,
    difference,
    judged,
    not_comparable,
    resampling_units,
)
from breakhis.evaluation.metrics import Metric
from breakhis.pipeline.task import SUBTYPE_CLASSES, subtype_index

K = len(SUBTYPE_CLASSES)
ACCURACY = Metric("subtype.image", "accuracy", "subtype_accuracy", "Subtype acc.", "subtype accuracy")
BALANCED_ACCURACY = Metric(
    "subtype.image",
    "balanced_accuracy",
    "subtype_balanced_accuracy",
    "Subtype balanced acc.",
    "subtype balanced accuracy",
)
MACRO_F1 = Metric("subtype.image", "macro_f1", "subtype_macro_f1", "Macro-F1", "macro-F1")
ROC_AUC = Metric("subtype.image", "roc_auc_ovr", "subtype_roc_auc_ovr", "OvR ROC AUC", "one-vs-rest ROC AUC")
PATIENT_ACCURACY = Metric(
    "subtype.patient",
    "accuracy",
    "subtype_patient_accuracy",
    "Patient subtype acc.",
    "patient subtype accuracy",
)
# every subtype model's row in metrics/report.md and metrics/model_card.md
SUBTYPE_HEADLINE = (ACCURACY, BALANCED_ACCURACY, MACRO_F1, ROC_AUC, PATIENT_ACCURACY)
# with intervals (evaluate.json's `subtype.ci`), pooled across folds and paired across runs
SUBTYPE_PAIRED = (ACCURACY, BALANCED_ACCURACY, MACRO_F1)


def image_metrics(actual: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Subtype metrics of probability rows (n, 8) against subtype indices `actual`."""
    actual = np.asarray(actual, dtype=int)
    predicted = np.asarray(probabilities).argmax(axis=1)
    present = np.unique(actual)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        actual, predicted, labels=np.arange(K), zero_division=np.nan
    )
    per_class = {
        code: {
            "precision": None if np.isnan(precision[i]) else float(precision[i]),
            "recall": None if support[i] == 0 else float(recall[i]),
            "f1": None if support[i] == 0 or np.isnan(f1[i]) else float(f1[i]),
            "images": int(support[i]),
            "predicted": int((predicted == i).sum()),
        }
        for i, code in enumerate(SUBTYPE_CLASSES)
    }
    result: dict[str, Any] = {
        "accuracy": float((predicted == actual).mean()),
        "balanced_accuracy": float(np.mean([per_class[SUBTYPE_CLASSES[i]]["recall"] for i in present])),
        "macro_f1": float(skm.f1_score(actual, predicted, labels=present, average="macro", zero_division=0)),
        "subtypes": len(present),
    }
    if len(present) >= 2:  # one-vs-rest AUC of each subtype present, averaged
        result["roc_auc_ovr"] = float(
            np.mean([skm.roc_auc_score(actual == i, probabilities[:, i]) for i in present])
        )
    result["per_class"] = per_class
    return result


def patient_table(rows: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per patient: its subtype, the mean of its images' probabilities, and the call."""
    frame = pd.DataFrame(probabilities, columns=list(SUBTYPE_CLASSES))
    frame["patient"] = rows["patient"].to_numpy()
    frame["actual"] = subtype_index(rows)
    table = frame.groupby("patient", sort=True).mean()
    table["actual"] = table["actual"].round().astype(int)
    table["predicted"] = table[list(SUBTYPE_CLASSES)].to_numpy().argmax(axis=1)
    return table


def patient_metrics(rows: pd.DataFrame, probabilities: np.ndarray) -> dict[str, Any]:
    table = patient_table(rows, probabilities)
    return {"accuracy": float((table["predicted"] == table["actual"]).mean()), "patients": len(table)}


def calibration_metrics(actual: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Multi-class Brier score (mean over images of the squared distance to the one-hot truth) and
    the log loss."""
    actual = np.asarray(actual, dtype=int)
    one_hot = np.eye(K)[actual]
    return {
        "brier": float(((probabilities - one_hot) ** 2).sum(axis=1).mean()),
        "log_loss": float(
            -np.log(np.clip(probabilities[np.arange(len(one_hot)), actual], 1e-12, 1.0)).mean()
        ),
    }


def statistics_of(actual: np.ndarray, probabilities: np.ndarray) -> Statistics:
    """The SUBTYPE_PAIRED metrics of one resample (undefined on a resample of one subtype)."""
    predicted = np.asarray(probabilities).argmax(axis=1)

    def statistics(draw: Draw) -> dict[str, float | None]:
        truth, call = actual[draw.rows], predicted[draw.rows]
        present = np.unique(truth)
        several = len(present) >= 2
        recalls = [float((call[truth == i] == i).mean()) for i in present]
        return {
            ACCURACY.name: float((call == truth).mean()),
            BALANCED_ACCURACY.name: float(np.mean(recalls)) if several else None,
            MACRO_F1.name: float(skm.f1_score(truth, call, labels=present, average="macro", zero_division=0))
            if several
            else None,
        }

    return statistics


def evaluate_subtypes(
    rows: pd.DataFrame, probabilities: np.ndarray, *, resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    """evaluate.json's `subtype` section of one model on the rows of a split."""
    actual = subtype_index(rows)
    image = image_metrics(actual, probabilities)
    intervals = GroupBootstrap(resampling_units(rows)).intervals(
        statistics_of(actual, probabilities), resamples=resamples, confidence=confidence, seed=seed
    )
    return {
        "image": {key: value for key, value in image.items() if key != "per_class"},
        "patient": patient_metrics(rows, probabilities),
        "per_class": image["per_class"],
        "ci": intervals,
        "calibration": calibration_metrics(actual, probabilities),
    }


def majority_subtype_baseline(rows: pd.DataFrame, train: pd.DataFrame) -> dict[str, Any]:
    """Always predicting the most frequent subtype of the train rows (never the test labels)."""
    majority = int(np.bincount(subtype_index(train), minlength=K).argmax())
    constant = np.zeros((len(rows), K))
    constant[:, majority] = 1.0
    image = image_metrics(subtype_index(rows), constant)
    return {
        "subtype": SUBTYPE_CLASSES[majority],
        "accuracy": image["accuracy"],
        "balanced_accuracy": image["balanced_accuracy"],
        "macro_f1": image["macro_f1"],
        "patient_accuracy": patient_metrics(rows, constant)["accuracy"],
    }


def paired_macro_f1_difference(
    rows: pd.DataFrame,
    model: np.ndarray,
    baseline: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Macro-F1 of `model` minus that of `baseline` on the same rows, with a patient-group interval
    (both scored on the same resample) and its verdict."""
    actual = subtype_index(rows)
    if len(np.unique(actual)) < 2:
        return {"verdict": not_comparable("the test split has one subtype only")}
    ours, theirs = image_metrics(actual, model), image_metrics(actual, baseline)
    intervals = GroupBootstrap(resampling_units(rows)).intervals(
        difference(statistics_of(actual, model), statistics_of(actual, baseline)),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
    interval: Interval | None = intervals.get(MACRO_F1.name)
    if interval is None:
        return {"verdict": not_comparable("every resample drew one subtype only")}
    return judged("macro_f1_difference", ours["macro_f1"] - theirs["macro_f1"], interval, resamples)
