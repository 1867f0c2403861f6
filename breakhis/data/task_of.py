"""Which task (breakhis.pipeline.task: binary or subtype) a run, a model, its outputs or its
predictions are of: the one place that tells, for every reader.

The type and what it means stay in breakhis.pipeline.task, which the train stage imports; this module
reads the task back out of what a run leaves behind:

- params (`task` in params.yaml, the schema's default when an older run's params lack it);
- models' descriptions, which must agree (`one_task`);
- a model's outputs: one probability per image, or a row of eight (`task_of`);
- a predictions table (plots/evaluate/predictions/<model>.csv): the subtype columns evaluate writes;
- a run's metrics (metrics/evaluate.json): the majority-subtype baseline only a subtype run has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

import pandas as pd

from breakhis.pipeline.params import Params
from breakhis.pipeline.task import SUBTYPE_CLASSES, Task, task_of

__all__ = [
    "ACTUAL_SUBTYPE_COLUMN",
    "SUBTYPE_PROBABILITY_COLUMNS",
    "TASKS",
    "as_task",
    "metrics_task",
    "one_task",
    "params_task",
    "predictions_task",
    "task_of",
]

TASKS: tuple[Task, ...] = get_args(Task)
DEFAULT_TASK: Task = Params.model_fields["task"].default
SUBTYPE_PROBABILITY_COLUMNS = tuple(f"p_{code}" for code in SUBTYPE_CLASSES)  # a subtype run's predictions
ACTUAL_SUBTYPE_COLUMN = "actual_subtype"  # and its true subtype (evaluate writes both, read back here)


def as_task(value: object, source: str) -> Task:
    """A task as a file names it; ValueError naming the file when it names none."""
    for task in TASKS:
        if value == task:
            return task
    raise ValueError(f"{source}: task {value!r} is not one of {', '.join(TASKS)}")


def params_task(params: Mapping[str, Any], source: str = "params.yaml") -> Task:
    """The task of a run's params as written (raw data: an older run's may lack the key)."""
    return as_task(params.get("task", DEFAULT_TASK), source)


def one_task(tasks: Mapping[str, Task]) -> Task | None:
    """The task every one of these (model -> its task) shares; None when they differ or are none."""
    distinct = set(tasks.values())
    return distinct.pop() if len(distinct) == 1 else None


def predictions_task(frame: pd.DataFrame) -> Task:
    """A predictions table's task: subtype when it holds every subtype's probability and the actual
    subtype (as evaluate writes them for a subtype model), else binary."""
    subtype = set(SUBTYPE_PROBABILITY_COLUMNS) <= set(frame.columns) and ACTUAL_SUBTYPE_COLUMN in frame
    return "subtype" if subtype else "binary"


def metrics_task(summary: Mapping[str, Any]) -> Task:
    """A run's task as its metrics (metrics/evaluate.json) say: only a subtype run has a majority-subtype
    baseline."""
    return "subtype" if "majority_subtype_baseline" in summary else "binary"
