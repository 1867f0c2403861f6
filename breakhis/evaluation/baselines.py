"""Baselines every model must beat, and the checks that say whether one does.

- The colour baseline: a logistic regression on each image's colour histogram (32 bins per RGB
  channel) and per-channel mean and standard deviation, fitted on the train split (multinomial
  over the eight subtypes with `task: subtype`). Stain and
  scanner colour differ between patients and labs, so a CNN that does not beat it has learned
  stain, not tissue.
- The paired comparison with it: the ROC AUC difference (model - baseline) on the same test
  images, with an interval that resamples whole patient groups, and the verdict every comparison
  gives (better, worse, within noise: breakhis.evaluation.bootstrap).
- The collapse check: a model whose test outputs are nearly constant has not left its
  initialisation (or learned only the class prior), whatever its accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from breakhis.data.images import read_rgb
from breakhis.evaluation.bootstrap import (
    Draw,
    GroupBootstrap,
    Statistics,
    judged,
    not_comparable,
    resampling_units,
)
from breakhis.evaluation.bootstrap import difference as paired
from breakhis.pipeline.task import Task, outputs, targets

HISTOGRAM_BINS = 32  # per RGB channel
REGULARISATION = 0.1  # inverse strength (C): 102 features, a few hundred images
COLLAPSED_STD = 0.01  # test outputs with a smaller standard deviation are "nearly constant"


def colour_features(image: np.ndarray) -> np.ndarray:
    """Normalised colour histogram per RGB channel, then per-channel mean and std (scaled to [0, 1])."""
    pixels = image.reshape(-1, 3)
    histograms = [
        np.histogram(pixels[:, channel], bins=HISTOGRAM_BINS, range=(0, 256))[0] / len(pixels)
        for channel in range(3)
    ]
    moments = np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)]) / 255.0
    return np.concatenate([*histograms, moments]).astype(np.float64)


def feature_matrix(paths: Sequence[str]) -> np.ndarray:
    return np.stack([colour_features(read_rgb(path)) for path in paths])


def fit_colour_baseline(features: np.ndarray, targets: np.ndarray) -> Pipeline:
    """Standardised features, L2-regularised logistic regression with balanced class weights."""
    if len(np.unique(targets)) < 2:
        raise ValueError("the train split has one class only: the colour baseline cannot be fitted")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=REGULARISATION, class_weight="balanced", max_iter=5000),
    )
    return model.fit(features, targets)


def colour_baseline_probabilities(
    train: pd.DataFrame, splits: dict[str, pd.DataFrame], task: Task = "binary"
) -> dict[str, np.ndarray]:
    """Fit on the train rows' images, return for every image of each split the malignant
    probability (binary), or the eight subtype probabilities (subtype: a multinomial logistic
    regression; a subtype absent from train gets probability 0)."""
    model = fit_colour_baseline(feature_matrix(train["path"].tolist()), targets(train, task, "train"))
    result = {}
    for name, rows in splits.items():
        probabilities = model.predict_proba(feature_matrix(rows["path"].tolist())).astype(np.float64)
        if task == "binary":
            result[name] = probabilities[:, 1]
        else:
            full = np.zeros((len(rows), outputs(task)))
            full[:, model.classes_] = probabilities
            result[name] = full
    return result


def paired_auc_difference(
    rows: pd.DataFrame,
    model: np.ndarray,
    baseline: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, float | int | str]:
    """ROC AUC of `model` minus that of `baseline` on the same rows, with a percentile interval
    that resamples whole patient groups (both models see the same resample: a paired comparison),
    and its verdict (breakhis.evaluation.bootstrap): `better`, `worse` or `within noise`. Resamples
    with one class only are skipped and counted."""
    targets = rows["target"].to_numpy()
    if len(np.unique(targets)) < 2:
        return {"verdict": not_comparable("the test split has one class only")}

    def auc(probabilities: np.ndarray) -> Statistics:
        def statistics(draw: Draw) -> dict[str, float | None]:
            index = draw.rows
            defined = len(np.unique(targets[index])) == 2
            return {"auc": skm.roc_auc_score(targets[index], probabilities[index]) if defined else None}

        return statistics

    difference = skm.roc_auc_score(targets, model) - skm.roc_auc_score(targets, baseline)
    bootstrap = GroupBootstrap(resampling_units(rows))
    intervals = bootstrap.intervals(
        paired(auc(model), auc(baseline)), resamples=resamples, confidence=confidence, seed=seed
    )
    if "auc" not in intervals:
        return {"verdict": not_comparable("every resample drew one class only")}
    return judged("auc_difference", difference, intervals["auc"], resamples)


def collapse_warnings(summary: Mapping[str, Any]) -> list[str]:
    """One line per scored model of metrics/evaluate.json whose test outputs are nearly constant."""
    return [
        f"{name}: test outputs nearly constant (standard deviation {result['output']['std']:.4f}); "
        "it has not learned to rank images, whatever its accuracy"
        for name, result in summary.items()
        if isinstance(result, Mapping) and result.get("output", {}).get("nearly_constant")
    ]


def output_spread(probabilities: np.ndarray) -> dict[str, float | bool]:
    """Standard deviation and range of a model's test outputs, and whether they are nearly constant."""
    std = float(np.std(probabilities))
    return {
        "std": std,
        "range": float(np.ptp(probabilities)) if len(probabilities) else 0.0,
        "nearly_constant": std < COLLAPSED_STD,
    }
