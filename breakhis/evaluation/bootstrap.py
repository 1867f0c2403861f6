"""The patient-group bootstrap: every interval the project reports, and what an interval of a
difference says.

Images of one patient are not independent, nor are patients of one slide root, so a resample
draws whole patient groups (the split's unit) with replacement: a drawn group brings all its
rows, and a group drawn twice counts twice. `GroupBootstrap.intervals` computes any statistics of
each resample (a statistic undefined on a resample, such as ROC AUC on one class, is None there and
left out) and returns their percentile intervals. A paired comparison is the same bootstrap with
`difference`: both runs are scored on the same resample.

The random draws are the contract: one `numpy.random.default_rng(seed)`, and per resample one
`integers(groups, size=groups)` over the groups in sorted order, whatever the statistics; the same
seed gives the same resamples to every caller.

The verdict on a difference (new - other): `better` when its whole interval is above zero, `worse`
when below, else `within noise`; `not comparable` when there is nothing to compare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property

import numpy as np
import pandas as pd

Interval = dict[str, float | int]  # low, high, and how many resamples it rests on
Statistics = Callable[["Draw"], Mapping[str, float | None]]  # name -> value on one resample (None: undefined)

BETTER, WORSE, NOISE, NOT_COMPARABLE = "better", "worse", "within noise", "not comparable"


def resampling_units(rows: pd.DataFrame) -> pd.Series:
    """The unit a bootstrap draws for each row: its patient group (the split's unit) when the rows
    have `patient_group`, else its patient."""
    return rows["patient_group" if "patient_group" in rows else "patient"]


class Draw:
    """One resample: the groups drawn (by number, with repeats) and the row positions they bring."""

    def __init__(self, groups: Sequence[np.ndarray], chosen: np.ndarray) -> None:
        self._groups = groups
        self.chosen = chosen
        self.rows = np.concatenate([groups[i] for i in chosen])  # in the order drawn

    @cached_property
    def copies(self) -> np.ndarray:
        """For each of `rows`, which drawn copy of its group it belongs to (0, 1, ...): a patient
        drawn twice is two patients of the resample."""
        return np.concatenate([np.full(len(self._groups[i]), n) for n, i in enumerate(self.chosen)])


class GroupBootstrap:
    """Resamples the rows of a table by unit (`units`: one label per row, e.g. `resampling_units`)."""

    def __init__(self, units: Sequence[object] | np.ndarray | pd.Series) -> None:
        labels = np.asarray(units).astype(str)
        by_unit = pd.Series(np.arange(len(labels))).groupby(labels, sort=True).indices
        self.names = [str(name) for name in by_unit]  # sorted
        self.groups = [np.asarray(index) for index in by_unit.values()]

    def whole(self) -> Draw:
        """Every group once, in sorted order: the point estimate's rows."""
        return Draw(self.groups, np.arange(len(self.groups)))

    def draws(self, resamples: int, seed: int) -> Iterator[Draw]:
        rng = np.random.default_rng(seed)
        count = len(self.groups)
        for _ in range(resamples):
            yield Draw(self.groups, rng.integers(count, size=count))

    def intervals(
        self, statistics: Statistics, *, resamples: int, confidence: float, seed: int
    ) -> dict[str, Interval]:
        """The percentile interval of each statistic over `resamples` draws, in the order the
        statistics are named; a statistic undefined on every draw has none."""
        samples: dict[str, list[float]] = {}
        for draw in self.draws(resamples, seed):
            for name, value in statistics(draw).items():
                values = samples.setdefault(name, [])
                if value is not None:
                    values.append(value)
        return {name: percentile_interval(values, confidence) for name, values in samples.items() if values}


def difference(new: Statistics, other: Statistics) -> Statistics:
    """The paired statistics: `new` minus `other` on the same draw, undefined where either is."""

    def statistics(draw: Draw) -> dict[str, float | None]:
        ours, theirs = new(draw), other(draw)
        result: dict[str, float | None] = {}
        for name, value in ours.items():
            against = theirs[name]
            result[name] = None if value is None or against is None else value - against
        return result

    return statistics


def percentile_interval(values: Sequence[float], confidence: float) -> Interval:
    """The central `confidence` interval of bootstrap values, and how many resamples it rests on
    (resamples where a statistic is undefined are left out)."""
    tail = (1 - confidence) / 2 * 100
    return {
        "low": float(np.percentile(values, tail)),
        "high": float(np.percentile(values, 100 - tail)),
        "resamples": len(values),
    }


def verdict(interval: Mapping[str, float | int]) -> str:
    """What the interval of a difference (new - other) says."""
    return BETTER if interval["low"] > 0 else WORSE if interval["high"] < 0 else NOISE


def judged(key: str, difference: float, interval: Interval, resamples: int) -> dict[str, float | int | str]:
    """A paired difference against a baseline as evaluate.json holds it: the difference under `key`,
    its interval, its verdict, and how many of `resamples` were skipped (statistic undefined)."""
    return {
        key: float(difference),
        **interval,
        "verdict": verdict(interval),
        "resamples_skipped": resamples - int(interval["resamples"]),
    }


def not_comparable(reason: str) -> str:
    return f"{NOT_COMPARABLE}: {reason}"
