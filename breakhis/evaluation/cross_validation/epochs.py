"""Pooled out-of-fold ROC AUC per training epoch: the test predictions of every fold's snapshots
(`train.snapshot_epochs`, scored by evaluate into plots/evaluate/epochs/<model>.csv) pooled epoch by
epoch. The curve picks each model's `epochs` for `train.validation: none` without looking at a
validation split of a few patients.

The best epoch is chosen on the same predictions it is scored on, so its AUC is optimistic; the
AUC at the epochs the cross-validation ran (the last row) is the honest figure. With a cosine
learning rate a snapshot is not the model a shorter run would train (its rate has not decayed yet):
confirm a shorter choice by cross-validating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from breakhis.evaluation.bootstrap import Draw, GroupBootstrap
from breakhis.evaluation.cross_validation.folds import FoldResult, FoldSettings
from breakhis.evaluation.cross_validation.pooled import patient_groups


@dataclass(frozen=True)
class EpochCurve:
    table: pd.DataFrame  # epoch, roc_auc, low, high, images: pooled over the folds
    best_epoch: int  # the highest pooled AUC (a tie: the fewest epochs)
    last_epoch: int  # the epochs every fold trained


def _auc(targets: np.ndarray, scores: np.ndarray) -> float | None:
    return float(skm.roc_auc_score(targets, scores)) if len(np.unique(targets)) == 2 else None


def _resampled_auc(targets: np.ndarray, scores: np.ndarray, draw: Draw) -> dict[str, float | None]:
    return {"roc_auc": _auc(targets[draw.rows], scores[draw.rows])}


def epoch_curve(frames: Sequence[pd.DataFrame], settings: FoldSettings) -> EpochCurve:
    """`frames`: each fold's snapshot predictions of one model (filename, patient, patient_group,
    target, epoch, probability); only the epochs every fold has are pooled."""
    common = sorted(int(e) for e in set.intersection(*(set(frame["epoch"]) for frame in frames)))
    pooled = pd.concat(frames, ignore_index=True)
    rows = []
    for epoch in common:
        at = pooled[pooled["epoch"] == epoch].reset_index(drop=True)
        targets, scores = at["target"].to_numpy(), at["probability"].to_numpy()
        interval = (
            GroupBootstrap(patient_groups(at, settings.group_by))
            .intervals(
                partial(_resampled_auc, targets, scores),
                resamples=settings.resamples,
                confidence=settings.confidence,
                seed=settings.seed,
            )
            .get("roc_auc", {})
        )
        rows.append(
            {
                "epoch": int(epoch),
                "roc_auc": _auc(targets, scores),
                "low": interval.get("low"),
                "high": interval.get("high"),
                "images": len(at),
            }
        )
    table = pd.DataFrame(rows, columns=["epoch", "roc_auc", "low", "high", "images"])
    ranked = table.dropna(subset=["roc_auc"])  # by epoch: argmax takes the first of equal AUCs
    best = (
        int(ranked["epoch"].to_numpy()[np.argmax(ranked["roc_auc"].to_numpy())])
        if len(ranked)
        else common[-1]
    )
    return EpochCurve(table=table, best_epoch=best, last_epoch=int(common[-1]))


def epoch_curves(results: Sequence[FoldResult], settings: FoldSettings) -> dict[str, EpochCurve]:
    """The curve of every model whose snapshots every fold scored, in the first fold's order."""
    if not results:
        return {}
    models = [model for model in results[0].epochs if all(model in result.epochs for result in results)]
    return {model: epoch_curve([result.epochs[model] for result in results], settings) for model in models}
