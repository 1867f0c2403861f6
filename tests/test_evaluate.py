"""evaluate_all: thresholds and ensemble weights come from the validation split, never from test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages import evaluate
from stages.pipeline.params import EvaluateParams


def split(name: str, targets: list[int]) -> pd.DataFrame:
    patients = [f"{name}{i}" for i in range(len(targets))]
    return pd.DataFrame(
        {"patient": patients, "patient_group": patients, "target": targets, "magnification": 100, "path": "-"}
    )


@pytest.fixture
def no_colour_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The colour baseline reads images; these rows have none (it is tested in test_baselines)."""
    monkeypatch.setattr(
        evaluate,
        "colour_baseline_probabilities",
        lambda train, splits: {name: np.full(len(rows), 0.5) for name, rows in splits.items()},
    )


def test_thresholds_and_ensemble_weights_come_from_validation(no_colour_baseline: None) -> None:
    splits = {
        "train": split("a", [0, 1, 1]),
        "val": split("v", [0, 0, 1, 1]),
        "test": split("t", [0, 0, 0, 1]),
    }
    # val and test disagree on purpose: chosen on test, the threshold and the weights would differ
    probabilities = {
        "custom": {"val": np.array([0.1, 0.2, 0.35, 0.4]), "test": np.array([0.9, 0.8, 0.2, 0.1])},
        "vgg19": {"val": np.array([0.9, 0.8, 0.2, 0.1]), "test": np.array([0.5, 0.6, 0.8, 0.9])},
        "resnet50": {"val": np.array([0.2, 0.6, 0.5, 0.7]), "test": np.array([0.6, 0.5, 0.4, 0.3])},
    }
    params = EvaluateParams(threshold="youden", ensemble="val_auc", bootstrap_resamples=100)
    summary = evaluate.evaluate_all(splits, probabilities, params, seed=0)

    assert summary["custom"]["threshold"] == pytest.approx(0.35)  # on test it would be 0.8 (reversed)
    assert summary["vgg19"]["threshold"] == pytest.approx(0.1)  # val: all malignant is best; test: 0.8
    assert summary["custom"]["val_roc_auc"] == 1.0 and summary["vgg19"]["val_roc_auc"] == 0.0
    # weights grow with validation AUC above chance: custom 0.5, resnet50 0.25, vgg19 0 (test: vgg19 best)
    assert summary["ensemble_weights"] == pytest.approx({"custom": 2 / 3, "vgg19": 0.0, "resnet50": 1 / 3})
    assert summary["custom"]["image"]["roc_auc"] == 0.0  # scored on test, as chosen on val
    assert summary["majority_baseline"]["class"] == "malignant"  # the train prior (test: benign)
