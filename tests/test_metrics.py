"""Metric formulas against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.metrics import evaluate_predictions, image_metrics, majority_baseline, patient_metrics


def test_image_metrics_by_hand() -> None:
    targets = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7, 0.55])
    m = image_metrics(targets, probabilities, threshold=0.5)
    # predicted: 0 1 0 1 1 0 1 1 -> tn 2, fp 1, fn 1, tp 4
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (2, 1, 1, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(4 / 5)
    assert m["recall"] == pytest.approx(4 / 5)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert m["f1"] == pytest.approx(0.8)
    # ROC AUC: fraction of (malignant, benign) pairs ranked correctly: 13 of 15
    assert m["roc_auc"] == pytest.approx(13 / 15)


def test_threshold_moves_the_decision() -> None:
    targets = np.array([0, 1])
    probabilities = np.array([0.3, 0.6])
    assert image_metrics(targets, probabilities, 0.5)["accuracy"] == 1.0
    assert image_metrics(targets, probabilities, 0.7)["accuracy"] == 0.5


def test_patient_recognition_rate_is_the_mean_of_per_patient_accuracy() -> None:
    patients = pd.Series(["a", "a", "a", "a", "b", "b", "c"])
    targets = np.array([1, 1, 1, 1, 0, 0, 1])
    probabilities = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.3])
    m = patient_metrics(patients, targets, probabilities, threshold=0.5)
    # a: 3/4 correct, b: 1/2, c: 0/1 -> (0.75 + 0.5 + 0) / 3; image accuracy would be 4/7
    assert m["recognition_rate"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    # mean probability: a 0.65 -> malignant (right), b 0.35 -> benign (right), c 0.3 -> benign (wrong)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["patients"] == 3


def test_per_magnification_and_baseline() -> None:
    rows = pd.DataFrame(
        {
            "patient": ["a", "a", "b", "b", "c", "c"],
            "target": [1, 1, 0, 0, 1, 1],
            "magnification": [40, 100, 40, 100, 40, 100],
        }
    )
    probabilities = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.7])
    result = evaluate_predictions(rows, probabilities, 0.5)
    assert result["by_magnification"]["40X"]["accuracy"] == 1.0
    assert result["by_magnification"]["100X"]["accuracy"] == pytest.approx(2 / 3)
    baseline = majority_baseline(rows)
    assert baseline == {"image_accuracy": pytest.approx(4 / 6), "patient_accuracy": pytest.approx(2 / 3)}
