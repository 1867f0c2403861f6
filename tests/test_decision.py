"""The decision rule has one home: whether a threshold is chosen or fixed (`chosen_by`, in
breakhis/pipeline/param_types.py, which params validation uses too), the run's decision as one object
and the one reader of the thresholds stored in the metrics (breakhis/evaluation/decision.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakhis.evaluation.decision import (
    RunDecision,
    read_decision,
    stored_threshold,
    threshold_rule,
    write_decisions,
)
from breakhis.pipeline.param_types import ENSEMBLE, F1, FIXED, MODEL_NAMES, YOUDEN, chosen_by
from breakhis.pipeline.params import EvaluateParams


def test_one_function_says_whether_the_threshold_is_chosen_or_fixed() -> None:
    assert chosen_by(0.5) is None and chosen_by(FIXED) is None  # a param, or a stored fixed rule
    assert chosen_by(YOUDEN) == "youden" and chosen_by(F1) == "f1"
    assert threshold_rule(EvaluateParams().threshold) == "fixed"
    assert threshold_rule(EvaluateParams(threshold="f1").threshold) == "f1"
    with pytest.raises(ValueError, match="'median': not fixed, youden or f1"):
        chosen_by("median")


def run_decision(rule: str = YOUDEN) -> RunDecision:
    thresholds = {"custom": 0.3, "vgg19": 0.6, "resnet50": 0.45, ENSEMBLE: 0.4, "colour_baseline": 0.5}
    return RunDecision(
        rule=threshold_rule(rule),
        thresholds=thresholds,
        weights={"custom": 0.25, "resnet50": 0.75},
        temperatures={"custom": 1.5},
        validation_images=20,
        test_time_flips=True,
    )


def test_the_decision_files_are_the_run_decision_s(tmp_path: Path) -> None:
    decision = run_decision()
    digests = {name: f"{i:064x}" for i, name in enumerate(MODEL_NAMES)}
    files = {name: tmp_path / name / "decision.json" for name in (*MODEL_NAMES, ENSEMBLE)}
    write_decisions(decision.decisions(digests), files)
    read = {name: read_decision(path) for name, path in files.items()}
    for name, stored in read.items():
        assert stored is not None and stored.threshold == decision.threshold(name)
        assert stored.threshold_rule == "youden" and stored.criterion == "youden"
        assert stored.validation_images == 20 and stored.test_time_flips
    ensemble = read[ENSEMBLE]
    assert ensemble is not None and ensemble.weights == decision.weights and ensemble.temperature is None
    assert set(ensemble.model_digests) == {"custom", "resnet50"}  # its members only
    custom = read["custom"]
    assert (
        custom is not None
        and custom.temperature == 1.5
        and custom.model_digests == {"custom": digests["custom"]}
    )
    vgg19 = read["vgg19"]
    assert vgg19 is not None and vgg19.temperature is None
    fixed = run_decision(FIXED).decisions(digests)[ENSEMBLE]
    assert fixed.criterion is None and "(fixed)" in fixed.describe()


def test_the_one_reader_of_the_thresholds_the_metrics_store() -> None:
    metrics = {"custom": {"threshold": 0.35}, "vgg19": {"threshold": None}, "resnet50": {"image": {}}}
    assert stored_threshold(metrics, "custom") == 0.35
    assert stored_threshold(metrics, "vgg19") is None and stored_threshold(metrics, "resnet50") is None
    assert stored_threshold(metrics, "ensemble") is None  # no entry
    assert stored_threshold({"custom": {"threshold": "0.5"}}, "custom") is None  # not a number
    assert stored_threshold({"custom": {"threshold": float("nan")}}, "custom") is None
    # older metrics: one top-level threshold for every entry; an entry's own wins
    older = {"threshold": 0.5, "custom": {"image": {}}, "vgg19": {"threshold": 0.2}}
    assert stored_threshold(older, "custom") == 0.5 and stored_threshold(older, "vgg19") == 0.2
