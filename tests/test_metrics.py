"""Metric formulas against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from breakhis.evaluation.decision import choose_threshold
from breakhis.evaluation.metrics import (
    HEADLINE,
    bootstrap_intervals,
    ensemble_weights,
    evaluate_predictions,
    image_metrics,
    majority_baseline,
    patient_metrics,
)


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


def test_undefined_metrics_are_none_not_zero() -> None:
    malignant_only = image_metrics(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.7]), 0.5)
    assert malignant_only["specificity"] is None and malignant_only["balanced_accuracy"] is None
    assert malignant_only["recall"] == pytest.approx(2 / 3) and "roc_auc" not in malignant_only
    no_positive_calls = image_metrics(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3]), 0.5)
    assert no_positive_calls["precision"] is None
    assert no_positive_calls["specificity"] == 1.0 and no_positive_calls["recall"] == 0.0
    assert no_positive_calls["balanced_accuracy"] == 0.5 and no_positive_calls["f1"] == 0.0
    benign_only = image_metrics(np.array([0, 0]), np.array([0.1, 0.2]), 0.5)
    assert benign_only["recall"] is None and benign_only["f1"] is None


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
    baseline = majority_baseline(rows, train=rows)
    assert baseline == {
        "class": "malignant",
        "image_accuracy": pytest.approx(4 / 6),
        "patient_accuracy": pytest.approx(2 / 3),
    }


def test_threshold_from_validation_by_criterion() -> None:
    targets = np.array([0, 1, 1, 1, 1])
    probabilities = np.array([0.3, 0.2, 0.6, 0.7, 0.8])
    # youden: t=0.6 gives sensitivity 3/4 and specificity 1 (J 0.75); f1: t=0.2 (precision 0.8, recall 1)
    assert choose_threshold(targets, probabilities, "youden") == pytest.approx(0.6)
    assert choose_threshold(targets, probabilities, "f1") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="one class"):
        choose_threshold(np.array([1, 1]), np.array([0.2, 0.9]), "youden")


def test_ensemble_weights() -> None:
    aucs = {"custom": 0.9, "vgg19": 0.7, "resnet50": 0.5}
    assert ensemble_weights(aucs, "mean") == pytest.approx(dict.fromkeys(aucs, 1 / 3))
    assert ensemble_weights(aucs, "val_auc") == pytest.approx(
        {"custom": 2 / 3, "vgg19": 1 / 3, "resnet50": 0.0}
    )
    assert ensemble_weights({"a": 0.4, "b": 0.5}, "val_auc") == {"a": 0.5, "b": 0.5}


def test_bootstrap_resamples_patients_not_images() -> None:
    # patient a: 3 images, all right; patient b: 1 image, wrong. Resampling the two patients gives
    # image accuracy 0 (b, b) a quarter of the time; resampling the 4 images would give 0 only 0.4%.
    rows = pd.DataFrame({"patient": ["a", "a", "a", "b"], "target": [1, 1, 1, 0]})
    probabilities = np.array([0.9, 0.8, 0.7, 0.6])
    intervals = bootstrap_intervals(rows, probabilities, 0.5, resamples=2000, confidence=0.95, seed=0)
    assert intervals["image_accuracy"] == {"low": 0.0, "high": 1.0, "resamples": 2000}
    assert intervals["patient_recognition_rate"] == {"low": 0.0, "high": 1.0, "resamples": 2000}
    # resamples with a single class (a, a or b, b: half of them) have no AUC; the rest have AUC 1
    auc = intervals["roc_auc"]
    assert (auc["low"], auc["high"]) == (1.0, 1.0)
    assert 900 < auc["resamples"] < 1100


def test_every_headline_rate_has_an_interval_around_its_estimate() -> None:
    rows = pd.DataFrame({"patient": list("aabbccddee"), "target": [1, 1, 0, 0, 1, 1, 0, 0, 1, 1]})
    probabilities = np.array([0.9, 0.4, 0.2, 0.6, 0.7, 0.8, 0.1, 0.3, 0.55, 0.2])
    intervals = bootstrap_intervals(rows, probabilities, 0.5, resamples=300, confidence=0.95, seed=2)
    point = evaluate_predictions(rows.assign(magnification=100), probabilities, 0.5)
    for metric in HEADLINE:
        interval = intervals[metric.name]
        assert interval["low"] <= metric.value_in(point) <= interval["high"], metric.name
        assert interval["resamples"] > 200  # undefined draws (one class) left out


def test_bootstrap_interval_is_a_point_when_every_patient_scores_the_same() -> None:
    rows = pd.DataFrame({"patient": ["a", "a", "b", "b", "c", "c"], "target": [1, 1, 0, 0, 1, 1]})
    probabilities = np.array([0.9, 0.1, 0.2, 0.7, 0.6, 0.4])  # each patient: one right, one wrong
    intervals = bootstrap_intervals(rows, probabilities, 0.5, resamples=500, confidence=0.95, seed=1)
    assert intervals["image_accuracy"] == {"low": 0.5, "high": 0.5, "resamples": 500}
    assert intervals["patient_recognition_rate"] == {"low": 0.5, "high": 0.5, "resamples": 500}
