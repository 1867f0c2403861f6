"""Calibration: Brier score, ECE and reliability bins on hand-computed cases; temperature scaling
fitted on the validation split only, applied the same way in evaluate and predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from breakhis.evaluation import scoring
from breakhis.evaluation.calibration import (
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    output_threshold,
    reliability_bins,
)
from breakhis.evaluation.decision import prediction_rule
from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.params import EvaluateParams


def test_brier_score_by_hand() -> None:
    # (0.1)^2 + (0.2)^2 + (0.4)^2 + (0.3)^2 = 0.30, over 4 images
    assert brier_score(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.6, 0.3])) == pytest.approx(0.075)


def test_ece_and_bins_by_hand() -> None:
    targets = np.array([0, 0, 1, 1])
    probabilities = np.array([0.05, 0.15, 0.15, 0.95])
    bins = reliability_bins(targets, probabilities)
    assert bins.to_dict("list") == {
        "mean_predicted": pytest.approx([0.05, 0.15, 0.95]),
        "fraction_malignant": [0.0, 0.5, 1.0],
        "images": [1, 2, 1],
    }
    # 1/4 * 0.05 + 2/4 * |0.5 - 0.15| + 1/4 * 0.05 = 0.2
    assert expected_calibration_error(targets, probabilities) == pytest.approx(0.2)


def test_bin_edges_belong_to_the_upper_bin_and_one_to_the_last() -> None:
    bins = reliability_bins(np.array([0, 1, 1]), np.array([0.1, 0.2, 1.0]))
    assert bins["mean_predicted"].tolist() == pytest.approx([0.1, 0.2, 1.0])  # three bins, not merged
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_temperature_scaling_recovers_a_known_overconfidence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=4000)
    targets = (rng.uniform(size=logits.size) < expit(logits)).astype(int)  # calibrated at T = 1
    overconfident = expit(3 * logits)
    assert fit_temperature(targets, overconfident) == pytest.approx(3, rel=0.1)
    assert fit_temperature(targets, expit(logits)) == pytest.approx(1, rel=0.1)
    before = expected_calibration_error(targets, overconfident)
    after = expected_calibration_error(targets, apply_temperature(overconfident, 3))
    assert after < before / 2


def test_temperature_keeps_ranks_and_the_half_decision() -> None:
    probabilities = np.array([0.02, 0.3, 0.5, 0.7, 0.99])
    scaled = apply_temperature(probabilities, 2.5)
    assert np.all(np.diff(scaled) > 0)
    assert scaled[2] == pytest.approx(0.5)
    assert np.all((scaled >= 0.5) == (probabilities >= 0.5))


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_output_threshold_decides_as_the_calibrated_threshold(threshold: float) -> None:
    raw = np.linspace(0.001, 0.999, 999)
    calibrated = apply_temperature(raw, 2.0)
    assert np.array_equal(calibrated >= threshold, raw >= output_threshold(threshold, 2.0) - 1e-12)
    assert output_threshold(threshold, None) == threshold


def rows(prefix: str, targets: list[int]) -> pd.DataFrame:
    patients = [f"{prefix}{i}" for i in range(len(targets))]
    return pd.DataFrame(
        {"patient": patients, "patient_group": patients, "target": targets, "magnification": 100, "path": "-"}
    )


def test_evaluate_fits_temperature_on_validation_never_on_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        scoring,
        "colour_baseline_probabilities",
        lambda train, splits, task="binary": {name: np.full(len(r), 0.5) for name, r in splits.items()},
    )
    val_targets = [0, 1] * 10
    val = np.array([0.9, 0.99, 0.01, 0.1] * 5)  # over-confident and half wrong on validation
    test_targets = [0, 0, 1, 1]
    test = np.array([0.2, 0.4, 0.6, 0.9])
    params = EvaluateParams(calibration="temperature", bootstrap_resamples=100)

    def run(test_labels: list[int]) -> dict:
        splits = {"train": rows("a", [0, 1]), "val": rows("v", val_targets), "test": rows("t", test_labels)}
        probabilities = {
            name: {"val": val.copy(), "test": test.copy()} for name in ("custom", "vgg19", "resnet50")
        }
        summary, _ = scoring.evaluate_all(splits, probabilities, params, seed=0)
        return summary, probabilities

    summary, probabilities = run(test_targets)
    expected = fit_temperature(np.array(val_targets), val)
    assert expected > 1.5  # the validation outputs are over-confident
    assert summary["custom"]["calibration"]["temperature"] == pytest.approx(expected)
    assert probabilities["custom"]["test"] == pytest.approx(apply_temperature(test, expected))
    assert summary["custom"]["calibration"]["uncalibrated"]["brier"] == pytest.approx(
        brier_score(np.array(test_targets), test)
    )
    assert "temperature" not in summary["ensemble"]["calibration"]  # a mean of calibrated members
    assert "temperature" not in summary["colour_baseline"]["calibration"]
    flipped, _ = run([1, 1, 0, 0])  # other test labels: the same temperature
    assert flipped["custom"]["calibration"]["temperature"] == pytest.approx(expected)


def test_predict_applies_the_temperatures_evaluate_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate's choices -> decisions (as written beside the models) -> predict's rule: the same
    calibrated outputs and thresholds as evaluate scored."""
    monkeypatch.setattr(
        scoring,
        "colour_baseline_probabilities",
        lambda train, splits, task="binary": {name: np.full(len(r), 0.5) for name, r in splits.items()},
    )
    val = np.array([0.9, 0.99, 0.01, 0.1] * 5)
    test = np.array([0.2, 0.4, 0.6, 0.9])
    splits = {"train": rows("a", [0, 1]), "val": rows("v", [0, 1] * 10), "test": rows("t", [0, 0, 1, 1])}
    probabilities = {name: {"val": val.copy(), "test": test.copy()} for name in MODEL_NAMES}
    params = EvaluateParams(calibration="temperature", threshold="youden", bootstrap_resamples=100)
    summary, decision = scoring.evaluate_all(splits, probabilities, params, seed=0)
    chosen = decision.decisions(dict.fromkeys(MODEL_NAMES, "0" * 64))
    assert chosen["custom"].validation_images == 20 and chosen["custom"].threshold_rule == "youden"
    assert chosen["custom"].temperature == summary["custom"]["calibration"]["temperature"]
    assert (
        chosen["ensemble"].temperature is None and chosen["ensemble"].weights == summary["ensemble_weights"]
    )
    rule, _ = prediction_rule(list(MODEL_NAMES), "ensemble", chosen, chosen["ensemble"])
    for name in MODEL_NAMES:
        assert rule.calibrate(name, test) == pytest.approx(probabilities[name]["test"])
    assert rule.threshold == summary["ensemble"]["threshold"]
    _, plain_decision = scoring.evaluate_all(
        splits,
        {n: {"val": val.copy(), "test": test.copy()} for n in MODEL_NAMES},
        EvaluateParams(bootstrap_resamples=100),
        seed=0,
    )
    plain = plain_decision.decisions(dict.fromkeys(MODEL_NAMES, "0" * 64))
    assert plain["custom"].calibrate(np.array([0.9])) == pytest.approx([0.9])  # calibration: none
