"""Is a difference between two runs real? A paired bootstrap over the test patients they share.

Both runs' per-image test predictions (plots/evaluate/predictions/<model>.csv: `filename`,
`patient`, `patient_group`, `actual`, `predicted`, `probability`) are matched image by image. Each
resample draws whole patient groups with replacement, the same draw for both runs, and takes the
difference of each compared metric (breakhis.evaluation.metrics.PAIRED); the verdict
(breakhis.evaluation.bootstrap) is `better` when the whole interval of the difference is above zero,
`worse` when below, else `within noise`. Runs whose test images differ (another split, other data)
are `not comparable`: nothing is compared.

What the interval covers: which patients happened to be tested. It does not cover training noise
(another seed, another CPU type): `python -m commands.seed_spread` measures that separately.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from breakhis.evaluation.bootstrap import (
    NOISE,
    NOT_COMPARABLE,
    Draw,
    GroupBootstrap,
    difference,
    not_comparable,
    resampling_units,
    verdict,
)
from breakhis.evaluation.metrics import ACCURACY, BALANCED_ACCURACY, PAIRED, RECOGNITION_RATE, ROC_AUC
from breakhis.evaluation.tables import interval, number, table

MALIGNANT = "malignant"
KEY = "filename"  # BreakHis file names are unique and carry the patient
COLUMNS = (KEY, "patient", "actual", "predicted", "probability")
RUNS = ("base", "new")


def _accuracy(target: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> float | None:
    return float((target == predicted).mean())


def _balanced_accuracy(target: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> float | None:
    if len(np.unique(target)) < 2:
        return None
    return float(skm.balanced_accuracy_score(target, predicted))


def _roc_auc(target: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> float | None:
    if len(np.unique(target)) < 2:
        return None
    return float(skm.roc_auc_score(target, probability))


# name -> f(targets, predicted classes, probabilities) over the rows of a (resampled) test set;
# the patient recognition rate is computed from per-patient rates (see `_Paired`)
IMAGE_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float | None]] = {
    ACCURACY.name: _accuracy,
    BALANCED_ACCURACY.name: _balanced_accuracy,
    ROC_AUC.name: _roc_auc,
}
METRICS = tuple(metric.name for metric in PAIRED)  # in the order of IMAGE_METRICS, then the rate


def comparability_problem(base: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """Why two runs' test predictions cannot be paired, or None when they can."""
    tasks = {name: prediction_task(frame) for name, frame in (("base", base), ("new", new))}
    if tasks["base"] != tasks["new"]:
        return (
            f"the base run predicts {TASK_WORDS[tasks['base']]}, the new run {TASK_WORDS[tasks['new']]} "
            "(task differs): their numbers do not measure the same thing"
        )
    for name, frame in (("base", base), ("new", new)):
        missing = [column for column in COLUMNS if column not in frame]
        if missing:
            return f"the {name} predictions have no {', '.join(missing)} column"
        if frame[KEY].duplicated().any():
            return (
                f"the {name} predictions list an image twice ({frame[KEY][frame[KEY].duplicated()].iloc[0]})"
            )
    base_names, new_names = set(base[KEY]), set(new[KEY])
    if base_names != new_names:
        return (
            f"the test images differ ({len(base_names - new_names)} only in the base, "
            f"{len(new_names - base_names)} only in the new run): another split or other data"
        )
    merged = base.merge(new, on=KEY, suffixes=("_base", "_new"))
    for column in ("actual", "patient"):
        if (merged[f"{column}_base"].astype(str) != merged[f"{column}_new"].astype(str)).any():
            return f"the same test images have another {column} in the two runs"
    return None


TASK_WORDS = {"binary": "benign vs malignant", "subtype": "the eight subtypes"}


def prediction_task(frame: pd.DataFrame) -> str:
    """The task a predictions CSV was written for: a subtype run's has `predicted_subtype`."""
    return "subtype" if "predicted_subtype" in frame else "binary"


class _Paired:
    """The two runs on the shared test images, in one row order, ready to be resampled."""

    def __init__(self, base: pd.DataFrame, new: pd.DataFrame) -> None:
        # the runs agree on each image's class and patient (comparability_problem): the base's are kept
        rows = base.merge(new[[KEY, "predicted", "probability"]], on=KEY, suffixes=("_base", "_new"))
        rows = rows.sort_values(KEY)
        self.target = (rows["actual"] == MALIGNANT).to_numpy().astype(int)
        self.predicted = {run: (rows[f"predicted_{run}"] == MALIGNANT).to_numpy().astype(int) for run in RUNS}
        self.probability = {run: rows[f"probability_{run}"].to_numpy(dtype=float) for run in RUNS}
        self.patient = rows["patient"].astype(str).to_numpy()
        self.bootstrap = GroupBootstrap(resampling_units(rows))
        groups = self.bootstrap.groups
        # per group, the fraction of each of its patients' images classified right (per run)
        self.patient_rates = {
            run: [
                np.array(
                    [correct[index][self.patient[index] == p].mean() for p in np.unique(self.patient[index])]
                )
                for index in groups
            ]
            for run, correct in ((run, self.predicted[run] == self.target) for run in RUNS)
        }

    def metrics(self, run: str) -> Callable[[Draw], dict[str, float | None]]:
        """Every compared metric of one run on a draw's groups (a group drawn twice counts twice)."""

        def statistics(draw: Draw) -> dict[str, float | None]:
            index = draw.rows
            target, predicted, probability = (
                self.target[index],
                self.predicted[run][index],
                self.probability[run][index],
            )
            values = {
                name: function(target, predicted, probability) for name, function in IMAGE_METRICS.items()
            }
            rates = np.concatenate([self.patient_rates[run][i] for i in draw.chosen])
            values[RECOGNITION_RATE.name] = float(rates.mean())
            return values

        return statistics


def paired_comparison(
    base: pd.DataFrame, new: pd.DataFrame, *, resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    """The compared metrics of both runs on their shared test images, the difference (new - base)
    with a paired patient-group bootstrap interval, and a verdict per metric.

    Returns {"comparable": False, "reason": ...} when the runs did not test the same images."""
    problem = comparability_problem(base, new)
    if problem:
        return {"comparable": False, "verdict": NOT_COMPARABLE, "reason": problem}
    paired = _Paired(base, new)
    everything = paired.bootstrap.whole()
    point = {run: paired.metrics(run)(everything) for run in RUNS}
    intervals = paired.bootstrap.intervals(
        difference(paired.metrics("new"), paired.metrics("base")),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
    result: dict[str, Any] = {
        "comparable": True,
        "images": len(paired.target),
        "patient_groups": len(paired.bootstrap.groups),
        "metrics": {},
    }
    for name in METRICS:
        old, now = point["base"][name], point["new"][name]
        if old is None or now is None or name not in intervals:
            result["metrics"][name] = {"base": old, "new": now, "verdict": not_comparable("one class only")}
            continue
        result["metrics"][name] = {
            "base": old,
            "new": now,
            "difference": now - old,
            **intervals[name],
            "verdict": verdict(intervals[name]),
        }
    return result


def compare_runs(
    base: dict[str, pd.DataFrame],
    new: dict[str, pd.DataFrame],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """`paired_comparison` of every scored model either run has (model -> its test predictions)."""
    results = {}
    for model in [*base, *(m for m in new if m not in base)]:
        if model not in base or model not in new:
            where = "the base" if model not in base else "the new run"
            results[model] = {
                "comparable": False,
                "verdict": NOT_COMPARABLE,
                "reason": f"no predictions in {where}",
            }
            continue
        results[model] = paired_comparison(
            base[model], new[model], resamples=resamples, confidence=confidence, seed=seed
        )
    return results


def comparison_markdown(
    results: dict[str, dict[str, Any]], base: str, new: str, confidence: float
) -> list[str]:
    """A table of every model and compared metric: both values, the difference with its interval,
    and the verdict (in bold when it is not `within noise`)."""
    labels = {metric.name: metric.label for metric in PAIRED}
    rows = []
    for model, result in results.items():
        if not result["comparable"]:
            rows.append([model, "all", "", "", "", f"{NOT_COMPARABLE}: {result['reason']}"])
            continue
        for name, entry in result["metrics"].items():
            if "difference" in entry:
                change = (
                    f"{number(entry['difference'], sign=True)} "
                    f"({interval(entry['low'], entry['high'], 3, sign=True)})"
                )
                word = entry["verdict"] if entry["verdict"] == NOISE else f"**{entry['verdict']}**"
            else:
                change, word = "", entry["verdict"]
            rows.append([model, labels[name], number(entry["base"]), number(entry["new"]), change, word])
    header = [
        "Model",
        "Metric",
        f"`{base}`",
        f"`{new}`",
        f"difference ({confidence:.0%} interval)",
        "verdict",
    ]
    return table(header, rows, "llrrll")


def comparable_groups(results: dict[str, dict[str, Any]]) -> int | None:
    """The number of shared test patient groups, when some model could be compared."""
    return next((r["patient_groups"] for r in results.values() if r["comparable"]), None)
