"""The baselines beside every model: the colour baseline (fitted on train only), the paired
comparison with it, the majority class from the train prior, and the collapse warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from breakhis.data.images import write_rgb
from breakhis.evaluation.baselines import (
    collapse_warnings,
    colour_baseline_probabilities,
    colour_features,
    output_spread,
    paired_auc_difference,
)
from breakhis.evaluation.bootstrap import BETTER, NOISE, WORSE
from breakhis.evaluation.metrics import bootstrap_intervals, majority_baseline


def coloured_rows(
    tmp_path: Path, name: str, colours: dict[int, tuple[int, int, int]], n: int = 12
) -> pd.DataFrame:
    """n images per class, each class a noisy version of its colour, one patient group per image pair."""
    rng = np.random.default_rng(len(name))
    rows = []
    for target, colour in colours.items():
        for i in range(n):
            image = np.clip(rng.normal(colour, 12, size=(16, 24, 3)), 0, 255).astype(np.uint8)
            path = tmp_path / f"{name}-{target}-{i}.png"
            write_rgb(path, image)
            group = f"{name}-{target}-{i // 2}"
            rows.append(
                {"path": str(path), "target": target, "patient": f"{group}{i % 2}", "patient_group": group}
            )
    return pd.DataFrame(rows)


def test_colour_features_are_histograms_and_moments() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255
    features = colour_features(image)
    assert features.shape == (32 * 3 + 6,)
    assert features[31] == 1.0 and features[32] == 1.0 and features[64] == 1.0  # one bin each
    np.testing.assert_allclose(features[-6:], [1, 0, 0, 0, 0, 0])


def test_the_colour_baseline_learns_from_train_labels_only(tmp_path: Path) -> None:
    """Train says pink is malignant; test says the opposite. A baseline fitted on train ranks the
    test images backwards (AUC near 0); one fitted on test would rank them right."""
    train = coloured_rows(tmp_path, "train", {0: (120, 60, 160), 1: (220, 120, 170)})
    test = coloured_rows(tmp_path, "test", {1: (120, 60, 160), 0: (220, 120, 170)})
    probabilities = colour_baseline_probabilities(train, {"test": test})["test"]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test["target"], probabilities) < 0.1


def test_paired_difference_of_identical_predictions_is_zero_and_within_noise() -> None:
    rows = pd.DataFrame({"target": [0, 1] * 20, "patient_group": [f"g{i // 4}" for i in range(40)]})
    predictions = np.random.default_rng(0).random(40)
    result = paired_auc_difference(rows, predictions, predictions, resamples=200, confidence=0.95, seed=0)
    assert result["auc_difference"] == 0 and result["low"] == 0 and result["high"] == 0
    assert result["verdict"] == NOISE


def test_a_perfect_model_is_better_than_a_random_baseline_on_enough_patients() -> None:
    rows = pd.DataFrame({"target": [0, 1] * 40, "patient_group": [f"g{i // 2}" for i in range(80)]})
    random = np.random.default_rng(1).random(80)
    result = paired_auc_difference(
        rows, rows["target"].to_numpy(float), random, resamples=300, confidence=0.95, seed=0
    )
    assert result["verdict"] == BETTER and result["low"] > 0
    worse = paired_auc_difference(
        rows, random, rows["target"].to_numpy(float), resamples=300, confidence=0.95, seed=0
    )
    assert worse["verdict"] == WORSE


def test_a_collapsed_model_is_flagged_and_a_trained_one_is_not() -> None:
    collapsed = output_spread(np.full(50, 0.67) + np.random.default_rng(0).normal(0, 0.002, 50))
    trained = output_spread(np.linspace(0.05, 0.95, 50))
    assert collapsed["nearly_constant"] and not trained["nearly_constant"]
    summary = {"custom": {"output": collapsed}, "vgg19": {"output": trained}, "test_images": 50}
    warnings = collapse_warnings(summary)
    assert len(warnings) == 1 and warnings[0].startswith("custom: test outputs nearly constant")


def test_the_majority_class_comes_from_train_not_test() -> None:
    train = pd.DataFrame({"target": [0, 0, 0, 1], "patient": list("abcd")})
    test = pd.DataFrame({"target": [1, 1, 1, 0], "patient": list("efgh")})
    baseline = majority_baseline(test, train)
    assert baseline["class"] == "benign"
    assert baseline["image_accuracy"] == 0.25 and baseline["patient_accuracy"] == 0.25


def test_intervals_resample_patient_groups_not_patients() -> None:
    """Each slide root holds one patient always right and one always wrong: resampling whole roots,
    every resample has recognition rate 0.5; resampling patients would spread it."""
    rows = pd.DataFrame(
        {
            "target": [1] * 20,
            "patient": [f"p{i}" for i in range(20)],
            "patient_group": [f"g{i // 2}" for i in range(20)],
        }
    )
    probabilities = (np.arange(20) % 2 == 0).astype(float)  # even patients right, odd wrong
    grouped = bootstrap_intervals(rows, probabilities, 0.5, resamples=200, confidence=0.95, seed=0)
    by_patient = bootstrap_intervals(
        rows.drop(columns="patient_group"), probabilities, 0.5, resamples=200, confidence=0.95, seed=0
    )
    assert grouped["patient_recognition_rate"] == {"low": 0.5, "high": 0.5, "resamples": 200}
    assert (
        by_patient["patient_recognition_rate"]["high"] - by_patient["patient_recognition_rate"]["low"] > 0.2
    )


@pytest.mark.parametrize("resamples", [100])
def test_paired_difference_reports_skipped_one_class_resamples(resamples: int) -> None:
    rows = pd.DataFrame({"target": [0, 1, 1, 1], "patient_group": ["a", "b", "b", "b"]})
    result = paired_auc_difference(
        rows, np.array([0.1, 0.9, 0.8, 0.7]), np.full(4, 0.5), resamples=resamples, confidence=0.9, seed=0
    )
    assert 0 < result["resamples_skipped"] < resamples
