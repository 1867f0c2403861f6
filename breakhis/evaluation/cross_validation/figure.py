"""The figure of a cross-validation summary: per-fold ROC AUC of every model beside its pooled AUC
and interval (summary.png)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from breakhis.evaluation.cross_validation.summary import CVSummary  # noqa: E402
from breakhis.evaluation.metrics import ROC_AUC  # noqa: E402
from breakhis.evaluation.tables import is_number  # noqa: E402
from breakhis.pipeline.figures import save_figure  # noqa: E402


def summary_figure(summary: CVSummary, path: Path) -> None:
    """Per-fold ROC AUC of every model (grey, labelled by fold) beside its pooled AUC and interval."""
    models = [
        m
        for m in summary.models
        if summary.folds.loc[summary.folds["model"] == m, ROC_AUC.column].notna().any()
    ]
    figure, axes = plt.subplots(figsize=(max(5.0, 1.2 * len(models) + 1.5), 4))
    for i, model in enumerate(models):
        rows = summary.folds[(summary.folds["model"] == model) & summary.folds[ROC_AUC.column].notna()]
        x = i - 0.28 + 0.08 * (rows["fold"].to_numpy() % 3)  # apart, so equal values stay readable
        axes.scatter(
            x,
            rows[ROC_AUC.column],
            color="grey",
            s=20,
            label="fold" if i == 0 else None,
        )
        for fold, position, value in zip(rows["fold"], x, rows[ROC_AUC.column], strict=True):
            axes.annotate(
                str(fold), (position, value), xytext=(-6, 4), textcoords="offset points", fontsize=7
            )
        pooled = summary.pooled.get(model, {})
        auc, interval = pooled.get(ROC_AUC.column), pooled.get("ci", {}).get(ROC_AUC.column)
        if is_number(auc):
            error = [[auc - interval["low"]], [interval["high"] - auc]] if interval else None
            axes.errorbar(
                i + 0.12,
                auc,
                yerr=error,
                fmt="o",
                color="C0",
                capsize=4,
                label=f"pooled ({summary.settings.confidence:.0%} interval)" if i == 0 else None,
            )
    axes.axhline(0.5, linestyle=":", color="grey")
    axes.set(
        xticks=range(len(models)),
        xticklabels=models,
        xlim=(-0.6, max(len(models), 2) - 0.4),
        ylim=(0, 1.02),
        ylabel="ROC AUC (test)",
    )
    axes.set_title(
        f"Cross-validation {summary.label}: seed {summary.settings.seed}, "
        f"{len(summary.experiments)} of {summary.settings.folds} folds",
        fontsize=10,
    )
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
