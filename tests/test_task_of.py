"""Which task a run, a model, its outputs, its predictions or its metrics are of: one place tells
(breakhis/data/task_of.py), for every reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from breakhis.data.task_of import (
    SUBTYPE_PROBABILITY_COLUMNS,
    TASKS,
    metrics_task,
    one_task,
    params_task,
    predictions_task,
    task_of,
)


def test_the_tasks_and_params() -> None:
    assert TASKS == ("binary", "subtype")
    assert params_task({}) == "binary"  # an older run's params without the key: the schema default
    assert params_task({"task": "subtype"}) == "subtype"
    with pytest.raises(ValueError, match="run-3: task 'subtypes' is not one of binary, subtype"):
        params_task({"task": "subtypes"}, "run-3")


def test_models_must_agree() -> None:
    assert one_task({"custom": "subtype", "vgg19": "subtype"}) == "subtype"
    assert one_task({"custom": "binary", "vgg19": "subtype"}) is None
    assert one_task({}) is None


def test_outputs_predictions_and_metrics() -> None:
    assert task_of(np.full(3, 0.5)) == "binary" and task_of(np.full((3, 8), 1 / 8)) == "subtype"
    binary = pd.DataFrame({"actual": ["benign"], "predicted": ["benign"], "probability": [0.2]})
    assert predictions_task(binary) == "binary"
    subtype = binary.assign(actual_subtype="A", **dict.fromkeys(SUBTYPE_PROBABILITY_COLUMNS, 1 / 8))
    assert predictions_task(subtype) == "subtype"
    assert predictions_task(subtype.drop(columns="p_PC")) == "binary"  # every subtype's column, or none
    assert predictions_task(subtype.drop(columns="actual_subtype")) == "binary"
    assert metrics_task({"custom": {}}) == "binary"
    assert metrics_task({"majority_subtype_baseline": {"subtype": "DC"}}) == "subtype"


def test_a_folds_unknown_task_names_the_experiment_and_its_commit() -> None:
    from breakhis.evaluation.cross_validation.folds import FoldResult

    fold = FoldResult(
        name="cv-s42-f0", rev="0123456789abcdef", params={"task": "binar"}, metrics={}, predictions={}
    )
    with pytest.raises(ValueError, match=r"^cv-s42-f0: params.yaml at 0123456: task 'binar' is not one of"):
        _ = fold.settings
