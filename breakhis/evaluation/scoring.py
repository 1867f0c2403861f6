"""The evaluate stage's metrics (metrics/evaluate.json), from the models' outputs: every model, the
ensemble and the colour baseline scored on test, with temperatures, thresholds and ensemble weights
chosen on val, never on test (breakhis.evaluation.decision). Pure: the outputs come in as arrays
(breakhis.modeling.evaluation_run runs the models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from breakhis.evaluation.baselines import colour_baseline_probabilities, output_spread, paired_auc_difference
from breakhis.evaluation.calibration import apply_temperature, calibration_metrics
from breakhis.evaluation.decision import (
    RunDecision,
    choose_threshold_on,
    choose_weights,
    fit_temperatures,
    soft_vote,
    threshold_rule,
)
from breakhis.evaluation.metrics import (
    bootstrap_intervals,
    evaluate_predictions,
    image_metrics,
    majority_baseline,
)
from breakhis.evaluation.subtype import (
    evaluate_subtypes,
    majority_subtype_baseline,
    paired_macro_f1_difference,
)
from breakhis.pipeline.param_types import COLOUR_BASELINE, ENSEMBLE
from breakhis.pipeline.params import EvaluateParams
from breakhis.pipeline.task import Task, malignant_probability, targets


@dataclass(frozen=True)
class ValidationChoices:
    """What evaluate chose on val (nothing without it), and the outputs before calibration."""

    temperatures: dict[str, float]  # model -> its fitted temperature (empty: no calibration)
    weights: dict[str, float]  # the ensemble's members and weights
    val_auc: dict[str, float]  # model (and ensemble) -> ROC AUC on val; empty without val
    uncalibrated: dict[str, dict[str, np.ndarray]]  # model (and ensemble) -> split -> outputs


def calibrate_and_vote(
    probabilities: dict[str, dict[str, np.ndarray]],
    val: pd.DataFrame | None,
    scored: tuple[str, ...],
    params: EvaluateParams,
    task: Task,
) -> ValidationChoices:
    """Fit the temperatures on val and apply them to `probabilities` (in place), choose the ensemble's
    weights, and add the ensemble's outputs on the `scored` splits: calibrated to `probabilities`,
    uncalibrated to the choices' copy."""
    val_targets = None if val is None else val["target"].to_numpy()
    uncalibrated = {name: dict(probs) for name, probs in probabilities.items()}
    if val is not None:
        temperatures = fit_temperatures(
            targets(val, task), {n: p["val"] for n, p in probabilities.items()}, params
        )
    else:
        temperatures = {}
    for name, temperature in temperatures.items():
        probabilities[name] = {
            split: apply_temperature(p, temperature) for split, p in probabilities[name].items()
        }
    weights, val_auc = choose_weights(
        val_targets,
        {n: malignant_probability(p["val"]) for n, p in probabilities.items() if "val" in p},
        params,
    )

    def vote(outputs: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {split: soft_vote({n: outputs[n][split] for n in weights}, weights) for split in scored}

    probabilities[ENSEMBLE] = vote(probabilities)
    uncalibrated[ENSEMBLE] = vote(uncalibrated)
    if val_targets is not None:
        ensemble_val = malignant_probability(probabilities[ENSEMBLE]["val"])
        val_auc[ENSEMBLE] = image_metrics(val_targets, ensemble_val, 0.5).get("roc_auc", 0.5)
    return ValidationChoices(temperatures, weights, val_auc, uncalibrated)


def evaluate_all(
    splits: dict[str, pd.DataFrame],
    probabilities: dict[str, dict[str, np.ndarray]],
    params: EvaluateParams,
    seed: int,
    task: Task = "binary",
) -> tuple[dict[str, Any], RunDecision]:
    """Metrics of every model and the ensemble on test, with temperatures, thresholds and weights
    from val, and the run's decision they make (built here, once; the metrics' thresholds and
    weights are its). `probabilities` (model -> split -> outputs) gains the ensemble's and the colour
    baseline's, and holds the calibrated outputs when `params.calibration` is `temperature`.
    Without a "val" split (the models trained on it), nothing is chosen: the threshold is fixed,
    the ensemble the mean of `params.members`, and the colour baseline fits train and val as the
    models did (`splits["train"]` holds both). With `task` subtype the outputs are rows of eight
    probabilities: temperatures and the soft vote work on them, everything else on P(malignant)."""
    train, val, test = splits["train"], splits.get("val"), splits["test"]
    val_targets = None if val is None else val["target"].to_numpy()
    scored = ("test",) if val is None else ("val", "test")
    chosen = calibrate_and_vote(probabilities, val, scored, params, task)
    probabilities[COLOUR_BASELINE] = colour_baseline_probabilities(
        train, {split: splits[split] for split in scored}, task
    )
    malignant = {
        name: {split: malignant_probability(p) for split, p in outputs.items()}
        for name, outputs in probabilities.items()
    }
    decision = RunDecision(
        rule=threshold_rule(params.threshold),
        thresholds={
            name: choose_threshold_on(val_targets, p.get("val"), params) for name, p in malignant.items()
        },
        weights=chosen.weights,
        temperatures=chosen.temperatures,
        validation_images=0 if val is None else len(val),
        test_time_flips=params.test_time_flips,
    )
    summary: dict[str, Any] = {
        "test_images": len(test),
        "majority_baseline": majority_baseline(test, train),
        "ensemble_weights": decision.weights,
    }
    if task == "subtype":
        summary["majority_subtype_baseline"] = majority_subtype_baseline(test, train)
    for name, outputs in probabilities.items():
        probs = malignant[name]
        threshold = decision.threshold(name)
        result = evaluate_predictions(test, probs["test"], threshold)
        result["ci"] = bootstrap_intervals(
            test,
            probs["test"],
            threshold,
            resamples=params.bootstrap_resamples,
            confidence=params.confidence,
            seed=seed,
        )
        if val_targets is not None:  # the colour baseline is not in the ensemble's val_auc
            result["val_roc_auc"] = (
                chosen.val_auc[name]
                if name in chosen.val_auc
                else image_metrics(val_targets, probs["val"], 0.5).get("roc_auc")
            )
        if task == "subtype":
            result["subtype"] = subtype_entry(name, test, outputs["test"], probabilities, params, seed)
        result["output"] = output_spread(probs["test"])
        result["calibration"] = calibration_entry(name, test, probs["test"], chosen)
        if name != COLOUR_BASELINE:
            result["vs_colour_baseline"] = paired_auc_difference(
                test,
                probs["test"],
                malignant_probability(probabilities[COLOUR_BASELINE]["test"]),
                resamples=params.bootstrap_resamples,
                confidence=params.confidence,
                seed=seed,
            )
        summary[name] = result
    return summary, decision


def calibration_entry(
    name: str, test: pd.DataFrame, probabilities: np.ndarray, chosen: ValidationChoices
) -> dict[str, Any]:
    """A model's `calibration` section: Brier and ECE of its test P(malignant) (`probabilities`), with
    its temperature and the uncalibrated figures when temperatures were fitted."""
    calibration: dict[str, Any] = calibration_metrics(test["target"].to_numpy(), probabilities)
    if name in chosen.temperatures:
        calibration["temperature"] = chosen.temperatures[name]
    if chosen.temperatures and name in chosen.uncalibrated:
        calibration["uncalibrated"] = calibration_metrics(
            test["target"].to_numpy(), malignant_probability(chosen.uncalibrated[name]["test"])
        )
    return calibration


def subtype_entry(
    name: str,
    test: pd.DataFrame,
    outputs: np.ndarray,
    probabilities: dict[str, dict[str, np.ndarray]],
    params: EvaluateParams,
    seed: int,
) -> dict[str, Any]:
    """A model's `subtype` section: its subtype metrics on test, and (not for the colour baseline
    itself) the paired macro-F1 difference with the colour baseline."""
    resamples, confidence = params.bootstrap_resamples, params.confidence
    entry = evaluate_subtypes(test, outputs, resamples=resamples, confidence=confidence, seed=seed)
    if name != COLOUR_BASELINE:
        entry["vs_colour_baseline"] = paired_macro_f1_difference(
            test,
            outputs,
            probabilities[COLOUR_BASELINE]["test"],
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
    return entry


def mark_unseen_magnifications(summary: dict[str, Any], seen: dict[str, set[int]]) -> None:
    """Add `seen_in_training` to each model's (and the ensemble's: all members) per-magnification
    entries: false where the model never trained on an image of that magnification."""
    members = summary["ensemble_weights"]
    seen = {**seen, ENSEMBLE: set.intersection(*(seen[name] for name in members))}
    for name, magnifications in seen.items():
        for key, entry in summary[name]["by_magnification"].items():
            entry["seen_in_training"] = int(key.removesuffix("X")) in magnifications
