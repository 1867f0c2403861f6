"""The summary of a cross-validation: per fold, mean +- std over the folds, and pooled out of
fold (with patient-group intervals), of the headline metrics of every scored entry."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from breakhis.evaluation.cross_validation.checks import CheckedFolds, check_folds
from breakhis.evaluation.cross_validation.ensemble import (
    ENSEMBLE_OUT_OF_FOLD,
    OutOfFoldEnsemble,
    out_of_fold_ensemble,
)
from breakhis.evaluation.cross_validation.epochs import EpochCurve, epoch_curves
from breakhis.evaluation.cross_validation.folds import COLUMNS, HEADLINE, FoldResult, FoldSettings, headline
from breakhis.evaluation.cross_validation.pooled import (
    follows_colour,
    pooled_intervals,
    pooled_majority_subtype,
    pooled_metrics,
    pooled_predictions,
    pooled_subtypes,
)
from breakhis.evaluation.decision import stored_threshold
from breakhis.evaluation.tables import is_number
from breakhis.pipeline.param_types import COLOUR_BASELINE, ENSEMBLE, MODEL_NAMES


@dataclass
class CVSummary:
    label: str
    settings: FoldSettings
    experiments: list[dict[str, Any]]  # fold, name, rev, baseline, test images and patients
    missing_folds: list[int]
    models: list[str]  # scored entries, then flat baselines
    folds: pd.DataFrame  # one row per fold and model: the headline metrics (folds.csv)
    spread: dict[str, dict[str, dict[str, Any]]]  # model -> metric -> mean, std, folds
    pooled: dict[str, dict[str, Any]]  # model -> headline values, ci, images, patients, ...
    warnings: list[str]
    ensemble_choice: OutOfFoldEnsemble | None = None  # when every model and the colour baseline were scored
    epochs: dict[str, EpochCurve] = field(default_factory=dict)  # model -> pooled AUC by epoch (snapshots)
    # model -> its pooled out-of-fold predictions (pooled_predictions), for paired comparisons
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)


def fold_table(checked: CheckedFolds, chosen: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per fold and scored entry: its headline metrics, threshold and test set size (and
    the ensemble chosen out of fold's, from its pooled predictions `chosen`)."""
    rows = []
    for result in checked.results:
        tested = result.predictions[checked.models[0]]  # every model predicts the same test images
        entries = {model: result.metrics[model] for model in [*checked.models, *checked.baselines]}
        if chosen is not None:
            mine = chosen[chosen["fold"] == result.fold]
            entries = _after(
                entries,
                ENSEMBLE,
                {ENSEMBLE_OUT_OF_FOLD: {**pooled_metrics(mine), "threshold": mine["threshold"].iloc[0]}},
            )
        for model, entry in entries.items():
            threshold = stored_threshold({**result.metrics, **entries}, model)  # older: one top-level
            rows.append(
                {
                    "fold": result.fold,
                    "model": model,
                    **headline(entry),
                    "threshold": math.nan if threshold is None else threshold,
                    "test_images": len(tested),
                    "test_patients": int(tested["patient"].nunique()),
                    "experiment": result.name,
                    "rev": result.rev,
                }
            )
    return pd.DataFrame(
        rows,
        columns=["fold", "model", *COLUMNS, "threshold", "test_images", "test_patients", "experiment", "rev"],
    )


def _after(entries: dict[str, Any], key: str, new: dict[str, Any]) -> dict[str, Any]:
    """`entries` with `new` inserted after `key` (at the end when it is absent)."""
    keys = list(entries)
    at = keys.index(key) + 1 if key in keys else len(keys)
    return {k: entries[k] for k in keys[:at]} | new | {k: entries[k] for k in keys[at:]}


def _finite(value: float) -> float | None:
    return float(value) if is_number(value) else None


def mean_std(table: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean and (sample) standard deviation over the folds of each model's headline metrics."""
    spread: dict[str, dict[str, dict[str, Any]]] = {}
    for model, rows in table.groupby("model", sort=False):
        spread[str(model)] = {}
        for column in COLUMNS:
            values = rows[column].dropna()
            if len(values):
                spread[str(model)][column] = {
                    "mean": _finite(values.mean()),
                    "std": _finite(values.std(ddof=1)) if len(values) > 1 else None,
                    "folds": len(values),
                }
    return spread


def _pooled_flat(name: str, table: pd.DataFrame) -> dict[str, Any]:
    """A constant-prediction baseline pools exactly as the fold values weighted by test images
    (image metrics) or test patients (patient metrics): its folds' decisions do not interact."""
    rows = table[table["model"] == name]
    result: dict[str, Any] = {}
    for metric in HEADLINE:
        weights = rows["test_patients" if metric.level == "patient" else "test_images"].astype(float)
        values = rows[metric.column]
        if values.notna().all() and weights.notna().all() and weights.sum() > 0:
            result[metric.column] = float((values * weights).sum() / weights.sum())
    return result


def summarise_folds(results: Sequence[FoldResult], label: str) -> CVSummary:
    """Check the folds and compute the per-fold, mean +- std and pooled out-of-fold summaries."""
    checked = check_folds(results)
    settings = checked.settings
    frames = {model: pooled_predictions(checked, model) for model in checked.models}
    members = [name for name in MODEL_NAMES if name in frames]
    choice = None
    if len(members) > 1 and {ENSEMBLE, COLOUR_BASELINE} <= set(frames) and len(checked.results) > 1:
        choice = out_of_fold_ensemble(frames, members, COLOUR_BASELINE)
        frames = _after(frames, ENSEMBLE, {ENSEMBLE_OUT_OF_FOLD: choice.pooled})
    table = fold_table(checked, None if choice is None else choice.pooled)
    pooled: dict[str, dict[str, Any]] = {}
    for model, frame in frames.items():
        scores = pooled_metrics(frame)
        pooled[model] = {
            **{m.column: _finite(scores[m.level].get(m.key, math.nan)) for m in HEADLINE},
            "ci": pooled_intervals(
                frame, resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed
            ),
            "images": len(frame),
            "patients": int(frame["patient"].nunique()),
            "patient_groups": int(frame["group"].nunique()),
            "image": scores["image"],
            "patient": scores["patient"],
        }
        if COLOUR_BASELINE in frames and model != COLOUR_BASELINE:
            pooled[model]["colour_spearman"] = follows_colour(frame, frames[COLOUR_BASELINE])
        subtypes = pooled_subtypes(
            frame, resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed
        )
        if subtypes is not None:
            pooled[model]["subtype"] = subtypes
    for name in checked.baselines:
        pooled[name] = _pooled_flat(name, table)
    majority = pooled_majority_subtype(checked, frames[checked.models[0]])
    if majority is not None:
        pooled["majority_subtype_baseline"] = majority
    experiments = [
        {
            "fold": result.fold,
            "name": result.name,
            "rev": result.rev,
            "baseline": result.baseline,
            "test_images": int(table.loc[table["fold"] == result.fold, "test_images"].iloc[0]),
            "test_patients": int(table.loc[table["fold"] == result.fold, "test_patients"].iloc[0]),
        }
        for result in checked.results
    ]
    return CVSummary(
        label=label,
        settings=settings,
        experiments=experiments,
        missing_folds=checked.missing_folds,
        models=[*frames, *checked.baselines],
        folds=table,
        spread=mean_std(table),
        pooled=pooled,
        warnings=checked.warnings,
        ensemble_choice=choice,
        epochs=epoch_curves(checked.results, settings),
        predictions=frames,
    )
