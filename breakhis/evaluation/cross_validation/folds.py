"""One fold of a cross-validation as loaded: its settings (what makes an experiment a fold), its
params, metrics/evaluate.json and test predictions, and the headline values of its entries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from breakhis.data.task_of import params_task
from breakhis.evaluation.metrics import ACROSS_RUNS
from breakhis.evaluation.tables import is_number
from breakhis.pipeline.params import Params
from breakhis.pipeline.task import Task

HEADLINE = ACROSS_RUNS  # the metrics of a cross-validation summary
COLUMNS = tuple(metric.column for metric in HEADLINE)  # their columns in tables and JSON


@dataclass(frozen=True)
class FoldSettings:
    """What makes an experiment a fold, read from its params.yaml (schema defaults when unset)."""

    strategy: str
    folds: int
    fold: int
    seed: int
    group_by: str
    resamples: int
    confidence: float
    task: Task = "binary"


def fold_settings(params: dict[str, Any], source: str = "params.yaml") -> FoldSettings:
    """Read from the raw params (not validated: an older experiment may have keys since renamed)."""
    defaults = Params()
    split = params.get("split") or {}
    evaluate = params.get("evaluate") or {}
    return FoldSettings(
        strategy=str(split.get("strategy", defaults.split.strategy)),
        folds=int(split.get("folds", defaults.split.folds)),
        fold=int(split.get("fold", defaults.split.fold)),
        seed=int(params.get("seed", defaults.seed)),
        group_by=str(split.get("group_by", defaults.split.group_by)),
        resamples=int(evaluate.get("bootstrap_resamples", defaults.evaluate.bootstrap_resamples)),
        confidence=float(evaluate.get("confidence", defaults.evaluate.confidence)),
        task=params_task(params, source),
    )


@dataclass(frozen=True)
class FoldResult:
    """One experiment as loaded: its params.yaml, metrics/evaluate.json and test predictions."""

    name: str  # experiment name, or the revision as given
    rev: str  # its commit
    params: dict[str, Any]
    metrics: dict[str, Any]
    predictions: dict[str, pd.DataFrame]  # scored model -> plots/evaluate/predictions/<model>.csv
    baseline: str | None = None  # the commit the experiment was run on, when it is an experiment
    code: str | None = None  # identity of the code it ran (git tree ids of experiments.CODE)
    epochs: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> its snapshots' test predictions

    @property
    def settings(self) -> FoldSettings:
        return fold_settings(self.params, f"{self.name}: params.yaml at {self.rev[:7]}")

    @property
    def fold(self) -> int:
        return self.settings.fold


def scored_models(metrics: dict[str, Any]) -> list[str]:
    """Entries of evaluate.json scored like a model (an `image` section): models, ensemble, baselines."""
    return [
        key
        for key, value in metrics.items()
        if isinstance(value, dict) and isinstance(value.get("image"), dict)
    ]


def flat_baselines(metrics: dict[str, Any]) -> list[str]:
    """Entries that hold headline metrics as flat keys (`majority_baseline`: image_accuracy, ...);
    not `majority_subtype_baseline`, whose keys are the subtype task's (pooled on its own)."""
    return [
        key
        for key, value in metrics.items()
        if isinstance(value, dict)
        and "image" not in value
        and "subtype" not in value
        and any(is_number(value.get(c)) for c in COLUMNS)
    ]


def headline(entry: dict[str, Any]) -> dict[str, float]:
    """The headline metrics of one evaluate.json entry (nested, or flat as a baseline's); NaN where
    it has none."""
    values = {}
    for metric in HEADLINE:
        value = (
            metric.value_in(entry) if isinstance(entry.get(metric.level), dict) else entry.get(metric.column)
        )
        values[metric.column] = float(value) if is_number(value) else math.nan
    return values
