"""A cross-validation summary as documents: markdown (pooled table first, then mean +- std, then
every fold), JSON, and the files of cv/<label>/s<seed>/ (with folds.csv and the figure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from breakhis.evaluation.cross_validation.ensemble import (
    ENSEMBLE_OUT_OF_FOLD,
    TOLERANCE,
    MemberChoice,
    SeedsChoice,
)
from breakhis.evaluation.cross_validation.figure import summary_figure
from breakhis.evaluation.cross_validation.folds import COLUMNS, HEADLINE
from breakhis.evaluation.cross_validation.summary import CVSummary
from breakhis.evaluation.metrics import Metric
from breakhis.evaluation.subtype import BALANCED_ACCURACY as SUBTYPE_BALANCED_ACCURACY
from breakhis.evaluation.subtype import MACRO_F1 as SUBTYPE_MACRO_F1
from breakhis.evaluation.subtype import SUBTYPE_HEADLINE
from breakhis.evaluation.tables import estimate, is_number, mean_std, number, table
from breakhis.pipeline.files import write_json
from breakhis.pipeline.yaml_text import yaml_lines, yaml_value


def _pooled_cell(entry: dict[str, Any], column: str) -> str:
    return estimate(entry.get(column), entry.get("ci", {}).get(column))


def _spread_cell(entry: dict[str, dict[str, Any]], column: str) -> str:
    stats = entry.get(column) or {}
    return mean_std(stats.get("mean"), stats.get("std"))


THRESHOLD_DIGITS = 3  # a recommended threshold's decimals: finer is noise on a few patients


def recommended_params(members: Sequence[str], threshold: float) -> dict[str, Any]:
    """What a pipeline run sets to use an ensemble chosen out of fold: its members and threshold."""
    return {"evaluate.members": list(members), "evaluate.threshold": round(threshold, THRESHOLD_DIGITS)}


def _members_override(choice: MemberChoice) -> str:
    params = recommended_params(choice.members, choice.threshold)
    return " ".join(f"-S '{key}={yaml_value(value)}'" for key, value in params.items())


def ensemble_lines(summary: CVSummary) -> list[str]:
    """How the ensemble chosen out of fold chose, fold by fold, and what it recommends."""
    choice = summary.ensemble_choice
    if choice is None:
        return []
    models = list(choice.all_folds.model_aucs)
    rows = [
        [
            str(fold),
            ", ".join(chosen.members),
            number(chosen.threshold),
            number(chosen.auc),
            *(number(chosen.model_aucs[name]) for name in models),
            number(chosen.colour_auc),
        ]
        for fold, chosen in sorted(choice.per_fold.items())
    ]
    everywhere = choice.all_folds
    return [
        "## The ensemble chosen out of fold",
        "",
        f"`{ENSEMBLE_OUT_OF_FOLD}`: for each test fold, the soft vote's members were chosen on the pooled "
        "predictions of the other folds' patients (never on the fold it scores): the equal-weight set "
        "of models with the highest pooled ROC AUC there, among the models that beat the colour baseline "
        "there, and its threshold (Youden's J there). Pooled ROC AUC on the other folds:",
        "",
        *table(
            ["Test fold", "Members", "Threshold", "Their AUC", *models, "colour baseline"],
            rows,
            "ll" + "r" * (len(models) + 3),
        ),
        "",
        f"Chosen on all {len(choice.per_fold)} folds: **{', '.join(everywhere.members)}**, threshold "
        f"{number(everywhere.threshold)} (pooled AUC {number(everywhere.auc)}): for a model trained on "
        f"every patient, `{_members_override(everywhere)}` (a model trained on more patients may shift "
        "its outputs: the threshold is the less certain of the two).",
        "",
    ]


def colour_lines(summary: CVSummary) -> list[str]:
    """How closely each model ranks patients as the colour baseline does (`follows_colour`)."""
    rows = [
        [model, number(entry["colour_spearman"])]
        for model, entry in summary.pooled.items()
        if is_number(entry.get("colour_spearman"))
    ]
    if not rows:
        return []
    return [
        "Following the stain: the Spearman correlation, over patients, of each model's mean "
        "probability with the colour baseline's (near 1: it ranks patients as their slides' colour does).",
        "",
        *table(["Model", "Spearman with the colour baseline"], rows, "lr"),
        "",
    ]


def _subtype_cell(entry: dict[str, Any], metric: Metric) -> str:
    subtype = entry.get("subtype", {})
    return estimate(metric.value_in(entry), subtype.get("ci", {}).get(metric.name))


def subtype_lines(summary: CVSummary) -> list[str]:
    """task: subtype: the pooled out-of-fold subtype metrics of every model, beside the majority
    subtype of each fold's train split."""
    models = [model for model in summary.models if "subtype" in summary.pooled.get(model, {})]
    if not models:
        return []
    rows = [[model, *(_subtype_cell(summary.pooled[model], m) for m in SUBTYPE_HEADLINE)] for model in models]
    majority = summary.pooled.get("majority_subtype_baseline")
    if majority:
        image = majority["image"]
        rows.append(
            [
                f"majority subtype of train ({', '.join(majority['subtypes'])})",
                number(image["accuracy"]),
                number(image["balanced_accuracy"]),
                number(image["macro_f1"]),
                "0.500",
                "",
            ]
        )
    present = summary.pooled[models[0]]["subtype"]["image"].get("subtypes")
    return [
        "## Subtypes, pooled out-of-fold",
        "",
        f"The eight-subtype task ({present} subtypes among the pooled test images): each image's most "
        "probable subtype; balanced accuracy and macro-F1 average over the subtypes present; the "
        "benign/malignant table above is derived from the same outputs. In brackets: intervals "
        "resampling patient groups.",
        "",
        *table(["Model", *(m.title for m in SUBTYPE_HEADLINE)], rows, "l" + "r" * len(SUBTYPE_HEADLINE)),
        "",
    ]


def epoch_lines(summary: CVSummary) -> list[str]:
    """Pooled AUC by training epoch (snapshots), and the epochs it points to."""
    if not summary.epochs:
        return []
    lines = [
        "## Pooled ROC AUC by epoch",
        "",
        "Every fold's snapshots (`train.snapshot_epochs`) scored on its test patients and pooled epoch by "
        "epoch; the last row is the model the folds kept. The best epoch is chosen on the same "
        "predictions, so its AUC is optimistic; with a cosine learning rate a snapshot is not what a "
        "shorter run trains: cross-validate the epochs it points to before relying on them.",
        "",
    ]
    for model, curve in summary.epochs.items():
        rows = [
            [
                str(row["epoch"]),
                estimate(row["roc_auc"], (row["low"], row["high"]) if is_number(row["low"]) else None),
                str(row["images"]),
            ]
            for row in curve.table.to_dict(orient="records")
        ]
        lines += [
            f"**{model}**: best at epoch {curve.best_epoch} of {curve.last_epoch} "
            f"(`-S models.{model}.epochs={curve.best_epoch}`).",
            "",
            *table(["Epoch", "ROC AUC", "Images"], rows, "rrr"),
            "",
        ]
    return lines


def markdown(summary: CVSummary, figure: str | None = "summary.png") -> str:
    """The summary as markdown: pooled table (the headline), mean +- std, then every fold."""
    s = summary.settings
    lines = [
        f"# Cross-validation `{summary.label}`: {len(summary.experiments)} of {s.folds} folds, seed {s.seed}",
        "",
        f"Folds by patient group (`split.group_by: {s.group_by}`); every fold is one DVC experiment.",
        "",
    ]
    lines += [f"**Warning: {warning}.**\n" for warning in summary.warnings]
    lines += [
        *pooled_lines(summary),
        *colour_lines(summary),
        *subtype_lines(summary),
        *ensemble_lines(summary),
        *epoch_lines(summary),
        *spread_lines(summary),
        *fold_lines(summary),
    ]
    if figure:
        lines += [f"![Per-fold and pooled ROC AUC]({figure})", ""]
    return "\n".join(lines)


def pooled_lines(summary: CVSummary) -> list[str]:
    """The headline: every test image of the folds scored once, by the model that never saw its patient."""
    s = summary.settings
    found = len(summary.experiments)
    images = max((entry.get("images", 0) for entry in summary.pooled.values()), default=0)
    scored = next((entry for entry in summary.pooled.values() if "images" in entry), {})
    return [
        "## Pooled out-of-fold",
        "",
        f"Every test image of the {found} fold(s) scored once, by the model of the fold that tested "
        f"it (which never saw its patient): {images} images, {scored.get('patients', 0)} patients, "
        f"{scored.get('patient_groups', 0)} patient groups. In brackets: {s.confidence:.0%} intervals "
        f"from {s.resamples} bootstrap resamples of patient groups. Decisions use each fold's own "
        "threshold; ROC AUC ranks the probabilities of all folds together.",
        "",
        *table(
            ["Model", *(metric.title for metric in HEADLINE)],
            ([model, *(_pooled_cell(summary.pooled[model], c) for c in COLUMNS)] for model in summary.models),
            "l" + "r" * len(HEADLINE),
        ),
        "",
    ]


def spread_lines(summary: CVSummary) -> list[str]:
    """Mean +- std of every headline metric over the folds."""
    return [
        "## Mean ± std over folds",
        "",
        "How much a score depends on which patients are tested (sample standard deviation).",
        "",
        *table(
            ["Model", *(metric.title for metric in HEADLINE)],
            (
                [model, *(_spread_cell(summary.spread.get(model, {}), c) for c in COLUMNS)]
                for model in summary.models
            ),
            "l" + "r" * len(HEADLINE),
        ),
        "",
    ]


def fold_lines(summary: CVSummary) -> list[str]:
    """Every fold: its experiment and test set, then each headline metric fold by fold."""
    lines = [
        "## Per fold",
        "",
        *table(
            ["Fold", "Experiment", "Commit", "Test images", "Test patients"],
            (
                [
                    str(e["fold"]),
                    f"`{e['name']}`",
                    f"`{e['rev'][:7]}`",
                    str(e["test_images"]),
                    str(e["test_patients"]),
                ]
                for e in summary.experiments
            ),
            "rllrr",
        ),
        "",
    ]
    folds = [e["fold"] for e in summary.experiments]
    for metric in HEADLINE:
        values = summary.folds.pivot(index="model", columns="fold", values=metric.column)
        rows = [
            [
                model,
                *(number(values.loc[model, fold]) for fold in folds),
                _spread_cell(summary.spread.get(model, {}), metric.column),
            ]
            for model in summary.models
            if not values.loc[model].isna().all()  # a baseline without this metric
        ]
        lines += [
            f"### {metric.title}",
            "",
            *table(
                ["Model", *(f"fold {fold}" for fold in folds), "mean ± std"],
                rows,
                "l" + "r" * (len(folds) + 1),
            ),
            "",
        ]
    return lines


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_json(summary: CVSummary) -> dict[str, Any]:
    s = summary.settings
    per_fold = {
        model: {column: dict(zip(rows["fold"].astype(str), rows[column], strict=True)) for column in COLUMNS}
        for model, rows in summary.folds.groupby("model", sort=False)
    }
    return _json_safe(
        {
            "label": summary.label,
            "seed": s.seed,
            "folds": s.folds,
            "group_by": s.group_by,
            "confidence": s.confidence,
            "resamples": s.resamples,
            "experiments": summary.experiments,
            "missing_folds": summary.missing_folds,
            "warnings": summary.warnings,
            "pooled": summary.pooled,
            "mean_std": summary.spread,
            "per_fold": per_fold,
            "ensemble_choice": _choice_json(summary),
            "epochs": {
                model: {
                    "best_epoch": curve.best_epoch,
                    "last_epoch": curve.last_epoch,
                    "by_epoch": curve.table.to_dict(orient="records"),
                }
                for model, curve in summary.epochs.items()
            },
        }
    )


def _choice_json(summary: CVSummary) -> dict[str, Any] | None:
    choice = summary.ensemble_choice
    if choice is None:
        return None

    def one(chosen: MemberChoice) -> dict[str, Any]:
        return {
            "members": list(chosen.members),
            "auc": chosen.auc,
            "model_aucs": chosen.model_aucs,
            "colour_baseline_auc": chosen.colour_auc,
            "threshold": chosen.threshold,
        }

    return {
        "per_test_fold": {str(fold): one(chosen) for fold, chosen in sorted(choice.per_fold.items())},
        "all_folds": one(choice.all_folds),
        "recommended": recommended_params(choice.all_folds.members, choice.all_folds.threshold),
    }


def _over_seeds(values: list[Any]) -> str:
    """Mean ± (sample) standard deviation of one number per seed."""
    numbers = [float(value) for value in values]
    return mean_std(float(np.mean(numbers)), float(np.std(numbers, ddof=1)) if len(numbers) > 1 else None)


def repeated_markdown(summaries: list[CVSummary]) -> str:
    """Repeated cross-validation: each model's pooled out-of-fold ROC AUC and accuracy per seed
    (other fold assignments), and their mean and standard deviation over the seeds."""
    seeds = [summary.settings.seed for summary in summaries]
    models = [m for m in summaries[0].models if all(m in s.pooled for s in summaries)]
    rows = []
    for model in models:
        for column, title in (("image_roc_auc", "ROC AUC"), ("image_accuracy", "accuracy")):
            values = [summary.pooled[model].get(column) for summary in summaries]
            if not all(is_number(v) for v in values):
                continue
            cells = [
                _pooled_cell(summary.pooled[model], column) if column == "image_roc_auc" else number(value)
                for summary, value in zip(summaries, values, strict=True)
            ]
            rows.append([model, title, *cells, _over_seeds(values)])
        values = [summary.pooled[model].get("colour_spearman") for summary in summaries]
        if all(is_number(v) for v in values):
            rows.append([model, "Spearman with colour", *(number(v) for v in values), _over_seeds(values)])
        for metric in (SUBTYPE_MACRO_F1, SUBTYPE_BALANCED_ACCURACY):
            values = [metric.value_in(summary.pooled[model]) for summary in summaries]
            if all(is_number(v) for v in values):
                cells = [_subtype_cell(summary.pooled[model], metric) for summary in summaries]
                rows.append([model, metric.label, *cells, _over_seeds(values)])
    label = summaries[0].label
    return "\n".join(
        [
            f"# Repeated cross-validation `{label}`: {len(seeds)} seeds",
            "",
            f"{summaries[0].settings.folds} patient-grouped folds per seed; each seed assigns the patient "
            "groups to other folds (and trains with other randomness). Pooled out-of-fold values per seed "
            "(ROC AUC with its interval resampling patient groups), then mean ± std over the seeds.",
            "",
            *table(
                ["Model", "Metric", *(f"seed {seed}" for seed in seeds), "mean ± std"],
                rows,
                "ll" + "r" * (len(seeds) + 1),
            ),
            "",
        ]
    )


def recommendation_lines(choice: SeedsChoice) -> list[str]:
    """The members and threshold repeated cross-validation chose for a pipeline run, and the sets it
    weighed: each one's pooled out-of-fold AUC per seed."""
    seeds = list(choice.aucs)
    rows = [
        [
            ", ".join(members) + (" (chosen)" if members == choice.members else ""),
            *(number(aucs[seed]) for seed in seeds),
            number(float(np.mean(list(aucs.values())))),
        ]
        for members, aucs in choice.candidates
    ]
    margins = ", ".join(f"{number(choice.margin(seed), sign=True)} (seed {seed})" for seed in seeds)
    return [
        "## The ensemble a pipeline run should use",
        "",
        "Every equal-weight set of models, its pooled out-of-fold ROC AUC in each seed. Chosen: the "
        f"highest mean among the sets that score within {TOLERANCE} of their best member in every "
        "seed (one model always does), its threshold Youden's J over every seed's predictions.",
        "",
        *table(["Members", *(f"seed {seed}" for seed in seeds), "mean"], rows, "l" + "r" * (len(seeds) + 1)),
        "",
        f"**{', '.join(choice.members)}**, threshold {number(choice.threshold)}: against its best member "
        f"{margins}. In a profile (a new version; `recommended.yaml` beside this file):",
        "",
        "```yaml",
        *recommended_yaml(choice).rstrip().splitlines(),
        "```",
        "",
    ]


def recommended_yaml(choice: SeedsChoice) -> str:
    """The profile params that make a pipeline run use what cross-validation chose."""
    params = recommended_params(choice.members, choice.threshold)
    section = {key.removeprefix("evaluate."): value for key, value in params.items()}
    return "\n".join(yaml_lines({"evaluate": section})) + "\n"


def write_summary(summary: CVSummary, directory: Path) -> str:
    """Write summary.md, summary.json, folds.csv and summary.png into `directory`; return the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    text = markdown(summary)
    (directory / "summary.md").write_text(text)
    write_json(directory / "summary.json", summary_json(summary))
    summary.folds.to_csv(directory / "folds.csv", index=False)
    summary_figure(summary, directory / "summary.png")
    return text
