"""evaluate_all: thresholds and ensemble weights come from the validation split, never from test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from breakhis.evaluation import scoring
from breakhis.pipeline.params import EvaluateParams


def split(name: str, targets: list[int]) -> pd.DataFrame:
    patients = [f"{name}{i}" for i in range(len(targets))]
    return pd.DataFrame(
        {"patient": patients, "patient_group": patients, "target": targets, "magnification": 100, "path": "-"}
    )


@pytest.fixture
def no_colour_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The colour baseline reads images; these rows have none (it is tested in test_baselines)."""
    monkeypatch.setattr(
        scoring,
        "colour_baseline_probabilities",
        lambda train, splits, task="binary": {name: np.full(len(rows), 0.5) for name, rows in splits.items()},
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
    summary, decision = scoring.evaluate_all(splits, probabilities, params, seed=0)

    assert summary["custom"]["threshold"] == pytest.approx(0.35)  # on test it would be 0.8 (reversed)
    assert summary["vgg19"]["threshold"] == pytest.approx(0.1)  # val: all malignant is best; test: 0.8
    assert summary["custom"]["val_roc_auc"] == 1.0 and summary["vgg19"]["val_roc_auc"] == 0.0
    # weights grow with validation AUC above chance: custom 0.5, resnet50 0.25, vgg19 0 (test: vgg19 best)
    assert summary["ensemble_weights"] == pytest.approx({"custom": 2 / 3, "vgg19": 0.0, "resnet50": 1 / 3})
    assert summary["custom"]["image"]["roc_auc"] == 0.0  # scored on test, as chosen on val
    assert summary["majority_baseline"]["class"] == "malignant"  # the train prior (test: benign)
    # the metrics hold the run's decision, built once: its rule, thresholds and weights
    assert decision.rule == "youden" and decision.validation_images == 4
    assert {name: summary[name]["threshold"] for name in decision.thresholds} == decision.thresholds
    assert set(decision.thresholds) == {"custom", "vgg19", "resnet50", "ensemble", "colour_baseline"}
    assert summary["ensemble_weights"] == decision.weights


def test_members_alone_make_the_ensemble(no_colour_baseline: None) -> None:
    splits = {
        "train": split("a", [0, 1, 1]),
        "val": split("v", [0, 0, 1, 1]),
        "test": split("t", [0, 0, 1, 1]),
    }
    outputs = {
        "custom": np.array([0.1, 0.2, 0.7, 0.8]),
        "vgg19": np.array([0.9, 0.9, 0.1, 0.1]),
        "resnet50": np.array([0.3, 0.2, 0.9, 0.6]),
    }
    probabilities = {name: {"val": p, "test": p} for name, p in outputs.items()}
    params = EvaluateParams(members=["custom", "resnet50"], bootstrap_resamples=100)
    summary, _ = scoring.evaluate_all(splits, probabilities, params, seed=0)
    assert summary["ensemble_weights"] == {"custom": 0.5, "resnet50": 0.5}
    assert summary["ensemble"]["image"]["roc_auc"] == 1.0  # vgg19 (reversed) left out
    assert set(summary["vgg19"]) >= {"val_roc_auc"}  # still scored, on its own


def test_without_validation_nothing_is_chosen_and_nothing_read_from_val(no_colour_baseline: None) -> None:
    """train.validation none: evaluate gets no "val" split (the models trained on it)."""
    splits = {"train": split("a", [0, 1, 1]), "test": split("t", [0, 0, 1, 1])}
    probabilities = {
        name: {"test": np.array([0.2, 0.6, 0.4, 0.9])} for name in ("custom", "vgg19", "resnet50")
    }
    summary, _ = scoring.evaluate_all(splits, probabilities, EvaluateParams(bootstrap_resamples=100), seed=0)
    assert summary["ensemble_weights"] == pytest.approx(dict.fromkeys(("custom", "vgg19", "resnet50"), 1 / 3))
    for name in ("custom", "vgg19", "resnet50", "ensemble", "colour_baseline"):
        assert summary[name]["threshold"] == 0.5 and "val_roc_auc" not in summary[name]
    with pytest.raises(ValueError, match="evaluate.threshold: youden needs a validation split"):
        scoring.evaluate_all(splits, probabilities, EvaluateParams(threshold="youden"), seed=0)


def test_magnifications_a_model_never_trained_on_are_marked(no_colour_baseline: None) -> None:
    from breakhis.evaluation.report import magnification_lines

    rows = pd.concat([split("t", [0, 1, 0, 1]).assign(magnification=m) for m in (40, 100)], ignore_index=True)
    rows["patient"] = rows["patient_group"] = [f"p{i}" for i in range(len(rows))]
    splits = {"train": split("a", [0, 1, 1]), "test": rows}
    probabilities = {n: {"test": np.tile([0.2, 0.7, 0.3, 0.8], 2)} for n in ("custom", "vgg19", "resnet50")}
    summary, _ = scoring.evaluate_all(splits, probabilities, EvaluateParams(bootstrap_resamples=100), seed=0)
    scoring.mark_unseen_magnifications(summary, {"custom": {40, 100}, "vgg19": {100}, "resnet50": {40, 100}})
    assert summary["custom"]["by_magnification"]["40X"]["seen_in_training"] is True
    assert summary["vgg19"]["by_magnification"]["40X"]["seen_in_training"] is False
    assert summary["vgg19"]["by_magnification"]["100X"]["seen_in_training"] is True
    assert summary["ensemble"]["by_magnification"]["40X"]["seen_in_training"] is False  # vgg19 is a member
    lines = "\n".join(magnification_lines(summary))
    assert "never trained on" in lines
    assert (
        "| 40X | 1.000 / 1.000 | 1.000 / 1.000 † |" in lines
        and "| 100X | 1.000 / 1.000 | 1.000 / 1.000 |" in lines
    )
