"""A cross-validation summary as documents: markdown (pooled table first, then mean +- std, then
every fold), JSON, and the files of cv/<label>/s<seed>/ (with folds.csv and the figure)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from stages.evaluation.cross_validation.figure import summary_figure
from stages.evaluation.cross_validation.folds import COLUMNS, HEADLINE
from stages.evaluation.cross_validation.summary import CVSummary
from stages.evaluation.tables import estimate, mean_std, number, table
from stages.pipeline.files import write_json


def _pooled_cell(entry: dict[str, Any], column: str) -> str:
    return estimate(entry.get(column), entry.get("ci", {}).get(column))


def _spread_cell(entry: dict[str, dict[str, Any]], column: str) -> str:
    stats = entry.get(column) or {}
    return mean_std(stats.get("mean"), stats.get("std"))


def markdown(summary: CVSummary, figure: str | None = "summary.png") -> str:
    """The summary as markdown: pooled table (the headline), mean +- std, then every fold."""
    s = summary.settings
    found = len(summary.experiments)
    images = max((entry.get("images", 0) for entry in summary.pooled.values()), default=0)
    scored = next((entry for entry in summary.pooled.values() if "images" in entry), {})
    header = ["Model", *(metric.title for metric in HEADLINE)]
    align = "l" + "r" * len(HEADLINE)
    lines = [
        f"# Cross-validation `{summary.label}`: {found} of {s.folds} folds, seed {s.seed}",
        "",
        f"Folds by patient group (`split.group_by: {s.group_by}`); every fold is one DVC experiment.",
        "",
    ]
    lines += [f"**Warning: {warning}.**\n" for warning in summary.warnings]
    lines += [
        "## Pooled out-of-fold",
        "",
        f"Every test image of the {found} fold(s) scored once, by the model of the fold that tested "
        f"it (which never saw its patient): {images} images, {scored.get('patients', 0)} patients, "
        f"{scored.get('patient_groups', 0)} patient groups. In brackets: {s.confidence:.0%} intervals "
        f"from {s.resamples} bootstrap resamples of patient groups. Decisions use each fold's own "
        "threshold; ROC AUC ranks the probabilities of all folds together.",
        "",
        *table(
            header,
            ([model, *(_pooled_cell(summary.pooled[model], c) for c in COLUMNS)] for model in summary.models),
            align,
        ),
        "",
        "## Mean ± std over folds",
        "",
        "How much a score depends on which patients are tested (sample standard deviation).",
        "",
        *table(
            header,
            (
                [model, *(_spread_cell(summary.spread.get(model, {}), c) for c in COLUMNS)]
                for model in summary.models
            ),
            align,
        ),
        "",
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
    if figure:
        lines += [f"![Per-fold and pooled ROC AUC]({figure})", ""]
    return "\n".join(lines)


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
        }
    )


def write_summary(summary: CVSummary, directory: Path) -> str:
    """Write summary.md, summary.json, folds.csv and summary.png into `directory`; return the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    text = markdown(summary)
    (directory / "summary.md").write_text(text)
    write_json(directory / "summary.json", summary_json(summary))
    summary.folds.to_csv(directory / "folds.csv", index=False)
    summary_figure(summary, directory / "summary.png")
    return text
