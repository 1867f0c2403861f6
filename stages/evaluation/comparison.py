"""Is a difference between two runs real? A paired bootstrap over the test patients they share.

Both runs' per-image test predictions (plots/evaluate/predictions/<model>.csv: `filename`,
`patient`, `patient_group`, `actual`, `predicted`, `probability`) are matched image by image. Each
resample draws whole patient groups with replacement, the same draw for both runs, and takes the
difference of each headline metric; the verdict is `better` when the whole interval of the
difference is above zero, `worse` when below, else `within noise`. Runs whose test images differ
(another split, other data) are `not comparable`: nothing is compared.

What the interval covers: which patients happened to be tested. It does not cover training noise
(another seed, another CPU type): `python -m stages.seed_spread` measures that separately.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from stages.evaluation.metrics import percentile_interval

MALIGNANT = "malignant"
KEY = "filename"  # BreakHis file names are unique and carry the patient
COLUMNS = (KEY, "patient", "actual", "predicted", "probability")
RUNS = ("base", "new")
BETTER, WORSE, NOISE, NOT_COMPARABLE = "better", "worse", "within noise", "not comparable"


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
    "image_accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "roc_auc": _roc_auc,
}
METRICS = (*IMAGE_METRICS, "patient_recognition_rate")


def comparability_problem(base: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """Why two runs' test predictions cannot be paired, or None when they can."""
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


class _Paired:
    """The two runs on the shared test images, in one row order, ready to be resampled."""

    def __init__(self, base: pd.DataFrame, new: pd.DataFrame) -> None:
        rows = base.merge(new, on=KEY, suffixes=("_base", "_new")).sort_values(KEY)
        self.target = (rows["actual_base"] == MALIGNANT).to_numpy().astype(int)
        self.predicted = {run: (rows[f"predicted_{run}"] == MALIGNANT).to_numpy().astype(int) for run in RUNS}
        self.probability = {run: rows[f"probability_{run}"].to_numpy(dtype=float) for run in RUNS}
        self.patient = rows["patient_base"].astype(str).to_numpy()
        group_column = "patient_group_base" if "patient_group_base" in rows else "patient_base"
        groups = rows[group_column].astype(str).to_numpy()
        self.groups = [
            np.asarray(index) for index in pd.Series(groups).groupby(groups, sort=True).indices.values()
        ]
        # per group, the fraction of each of its patients' images classified right (per run)
        self.patient_rates = {
            run: [
                np.array(
                    [correct[index][self.patient[index] == p].mean() for p in np.unique(self.patient[index])]
                )
                for index in self.groups
            ]
            for run, correct in ((run, self.predicted[run] == self.target) for run in RUNS)
        }

    def metrics(self, run: str, chosen: np.ndarray) -> dict[str, float | None]:
        """Every headline metric of one run on the drawn groups (a group drawn twice counts twice)."""
        index = np.concatenate([self.groups[i] for i in chosen])
        target, predicted, probability = (
            self.target[index],
            self.predicted[run][index],
            self.probability[run][index],
        )
        values = {name: function(target, predicted, probability) for name, function in IMAGE_METRICS.items()}
        rates = np.concatenate([self.patient_rates[run][i] for i in chosen])
        values["patient_recognition_rate"] = float(rates.mean())
        return values


def verdict(interval: dict[str, float | int]) -> str:
    return BETTER if interval["low"] > 0 else WORSE if interval["high"] < 0 else NOISE


def paired_comparison(
    base: pd.DataFrame, new: pd.DataFrame, *, resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    """The headline metrics of both runs on their shared test images, the difference (new - base)
    with a paired patient-group bootstrap interval, and a verdict per metric.

    Returns {"comparable": False, "reason": ...} when the runs did not test the same images."""
    problem = comparability_problem(base, new)
    if problem:
        return {"comparable": False, "verdict": NOT_COMPARABLE, "reason": problem}
    paired = _Paired(base, new)
    everything = np.arange(len(paired.groups))
    point = {run: paired.metrics(run, everything) for run in RUNS}
    samples: dict[str, list[float]] = {name: [] for name in METRICS}
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        chosen = rng.integers(len(paired.groups), size=len(paired.groups))
        drawn = {run: paired.metrics(run, chosen) for run in RUNS}
        for name in METRICS:
            old, now = drawn["base"][name], drawn["new"][name]
            if old is not None and now is not None:  # undefined when the draw has one class only
                samples[name].append(now - old)
    result: dict[str, Any] = {
        "comparable": True,
        "images": len(paired.target),
        "patient_groups": len(paired.groups),
        "metrics": {},
    }
    for name in METRICS:
        old, now = point["base"][name], point["new"][name]
        if old is None or now is None or not samples[name]:
            result["metrics"][name] = {"base": old, "new": now, "verdict": "undefined: one class only"}
            continue
        interval = percentile_interval(samples[name], confidence)
        result["metrics"][name] = {
            "base": old,
            "new": now,
            "difference": now - old,
            **interval,
            "verdict": verdict(interval),
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


METRIC_TITLES = {
    "image_accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "roc_auc": "ROC AUC",
    "patient_recognition_rate": "patient recognition rate",
}


def _value(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


def comparison_markdown(
    results: dict[str, dict[str, Any]], base: str, new: str, confidence: float
) -> list[str]:
    """A table of every model and headline metric: both values, the difference with its interval,
    and the verdict (in bold when it is not `within noise`)."""
    lines = [
        f"| Model | Metric | `{base}` | `{new}` | difference ({confidence:.0%} interval) | verdict |",
        "|---|---|---:|---:|---|---|",
    ]
    for model, result in results.items():
        if not result["comparable"]:
            lines.append(f"| {model} | all | | | | not comparable: {result['reason']} |")
            continue
        for name, entry in result["metrics"].items():
            if "difference" in entry:
                change = f"{entry['difference']:+.3f} ({entry['low']:+.3f} to {entry['high']:+.3f})"
                word = entry["verdict"] if entry["verdict"] == NOISE else f"**{entry['verdict']}**"
            else:
                change, word = "", entry["verdict"]
            lines.append(
                f"| {model} | {METRIC_TITLES[name]} | {_value(entry['base'])} | {_value(entry['new'])} | "
                f"{change} | {word} |"
            )
    return lines


def comparable_groups(results: dict[str, dict[str, Any]]) -> int | None:
    """The number of shared test patient groups, when some model could be compared."""
    return next((r["patient_groups"] for r in results.values() if r["comparable"]), None)
