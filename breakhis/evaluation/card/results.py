"""The model card's Metrics section: the decision rule evaluate stored beside the models, and every
model's test metrics with their intervals (or, without them, why image-level ones would mislead)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from breakhis.evaluation.card.values import as_number, lookup, metric_cell, metric_interval, wilson_interval
from breakhis.evaluation.decision import read_decision, stored_threshold
from breakhis.evaluation.metrics import HEADLINE, majority_cells
from breakhis.evaluation.tables import number, table
from breakhis.pipeline.param_types import ENSEMBLE, EVALUATED, F1, MODEL_NAMES, SCORED_MODELS, YOUDEN
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import EVALUATE_METRICS, decision_file

CRITERIA = {YOUDEN: "Youden's J (balanced accuracy)", F1: "F1"}


def decision_lines(models_dir: Path, weights_rule: str = "mean") -> list[str]:
    """The decision rule, from the decisions evaluate wrote beside the models; `weights_rule`:
    `evaluate.ensemble` of the run (mean: equal weights, nothing chosen)."""
    ensemble = read_decision(decision_file(ENSEMBLE, models_dir))
    if ensemble is None:
        return [f"No decisions in `{models_dir}` (written by evaluate).", ""]
    weights = ensemble.weights
    how = (
        "the mean"
        if len({round(w, 9) for w in weights.values()}) == 1
        else ("a weighted mean (weights " + ", ".join(f"{n} {w:.3f}" for n, w in weights.items()) + ")")
    )
    if ensemble.criterion is None:
        rule = f"at least the threshold **{ensemble.threshold:g}** (`evaluate.threshold`)"
    else:
        rule = (
            f"at least a threshold chosen per model on the validation split to maximise "
            f"{CRITERIA[ensemble.criterion]} "
            "(never on test; the thresholds are in the table below)"
        )
    models = [read_decision(decision_file(name, models_dir)) for name in MODEL_NAMES]
    temperatures = [f"{d.model} {d.temperature:.3g}" for d in models if d is not None and d.temperature]
    calibrated = (
        f" Each model's logits are divided by a temperature fitted on validation ({', '.join(temperatures)})."
        if temperatures
        else ""
    )
    # only what was actually chosen on validation: a fixed threshold and equal weights are params
    chosen = [
        *(["the thresholds"] if ensemble.criterion is not None else []),
        *(["the temperatures"] if temperatures else []),
        *(["the ensemble weights"] if weights_rule == "val_auc" else []),
    ]
    if ensemble.validation_images and chosen:
        chosen_on = (
            f"{' and '.join(chosen).capitalize()} were chosen on {ensemble.validation_images} "
            "validation images; the decisions are stored"
        )
    elif ensemble.validation_images:
        chosen_on = (
            "Nothing was chosen on the validation images: the threshold and the equal weights are "
            "params (`evaluate.threshold`, `evaluate.ensemble`); they are stored"
        )
    else:
        chosen_on = (
            "Nothing was chosen on these images (the models trained on the validation split): the "
            "threshold and the members are params, as cross-validation recommended them; they are stored"
        )
    members = " and ".join(weights) if len(weights) < len(MODEL_NAMES) else "the three models"
    return [
        f"**Ensemble**: soft vote, {how} of the malignant probabilities of {members}. An image is "
        f"called malignant when its probability is {rule}.{calibrated} {chosen_on} beside the models "
        f"(`{models_dir}/<model>/decision.json`, `{models_dir}/ensemble/decision.json`), where predict "
        "reads them.",
        "",
    ]


def metrics_section(params: Params, summary: Mapping[str, Any], models_dir: Path) -> list[str]:
    if not summary:
        return ["## Metrics (test split)", "", f"No metrics found ({EVALUATE_METRICS}).", ""]
    has_intervals = any(
        metric_interval(summary, model, metric.level, metric.key)
        for model in SCORED_MODELS
        for metric in HEADLINE
    )
    evaluate = params.evaluate
    lines = [
        "## Metrics (test split)",
        "",
        f"{summary.get('test_images', 'n/a')} test images."
        + (
            f" In brackets: {evaluate.confidence:.0%} confidence intervals from "
            f"{evaluate.bootstrap_resamples} bootstrap resamples of whole test patients."
            if has_intervals
            else ""
        ),
        "",
        *decision_lines(models_dir, evaluate.ensemble),
    ]
    rows = []
    for model in EVALUATED:  # the colour baseline too, as the report shows it
        if model in summary or any(k.startswith(f"{model}.") for k in summary):
            threshold = stored_threshold(summary, model)
            cells = [metric_cell(summary, model, metric.level, metric.key) for metric in HEADLINE]
            rows.append([model, number(threshold, 2), *cells])
    baseline = summary.get("majority_baseline", {})
    if baseline:
        rows.append(["majority class", "", *majority_cells(baseline)])
    lines += table(
        ["Model", "Threshold", *(metric.title for metric in HEADLINE)], rows, "lr" + "r" * len(HEADLINE)
    )
    lines += [
        "",
        "Sensitivity: recall of malignant. Patient recognition rate: mean over test patients of the "
        "fraction of their images classified correctly (the BreakHis measure). Patient accuracy: each "
        "patient classified by the mean probability of their images.",
    ]
    patients = as_number(lookup(summary, "ensemble.patient.patients"))
    accuracy = as_number(lookup(summary, "ensemble.patient.accuracy"))
    if not has_intervals and patients and accuracy is not None:
        low, high = wilson_interval(accuracy * patients, int(patients))
        lines.append(
            f"\nNo bootstrap intervals in this run's metrics. The test split has only {int(patients)} "
            f"patients: the ensemble's patient accuracy of {accuracy:.3f} has a 95% Wilson interval of "
            f"{low:.3f}-{high:.3f}. Image-level intervals that treat images as independent would be too "
            "narrow: images of one patient are correlated, so the effective sample size is closer to "
            "the number of patients."
        )
    lines.append("")
    return lines
