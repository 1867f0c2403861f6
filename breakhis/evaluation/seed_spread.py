"""How much the headline metrics move when only the training seed changes (same data, same split,
same code): the noise floor below which no change between two runs means anything.

Also counts how often the paired comparison (breakhis.evaluation.comparison) calls a seed-only
change `better` or `worse`: its interval covers which patients were tested, not training noise,
so those calls are false alarms a reviewer must discount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from breakhis.data.task_of import params_task
from breakhis.evaluation.bootstrap import BETTER, NOISE, WORSE
from breakhis.evaluation.calibration import calibration_metrics
from breakhis.evaluation.comparison import MALIGNANT, comparability_problem, paired_comparison
from breakhis.evaluation.metrics import PAIRED
from breakhis.evaluation.subtype import SUBTYPE_PAIRED
from breakhis.evaluation.tables import mean_std, number, table
from breakhis.pipeline.param_types import COLOUR_BASELINE
from breakhis.pipeline.params import Params

CALIBRATION = {"brier": "Brier score", "ece": "ECE"}  # from the test predictions' probabilities


@dataclass(frozen=True)
class SeedRun:
    """One retraining as loaded: its training seed, metrics/evaluate.json and test predictions."""

    name: str
    train_seed: int
    params: dict[str, Any]  # its params.yaml
    metrics: dict[str, Any]
    predictions: dict[str, pd.DataFrame]

    code: str = ""  # identity of the code it ran (git tree ids of experiments.CODE)

    def other_params(self) -> dict[str, Any]:
        """Its params with the schema's defaults filled in, without train.seed: what must be the same
        in every run (an older run's params that no longer validate are compared as written)."""
        try:
            params: dict[str, Any] = Params.model_validate(self.params).model_dump()
        except ValidationError:
            params = dict(self.params)
        train = {k: v for k, v in (params.get("train") or {}).items() if k != "seed"}
        return {**params, "train": train}


def check_runs(runs: Sequence[SeedRun]) -> None:
    """Refuse runs that are not retrainings of one configuration on one test set."""
    if len(runs) < 2:
        raise ValueError(f"a seed spread needs at least 2 runs (got {len(runs)})")
    seeds = [run.train_seed for run in runs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"two runs share a training seed: {seeds}")
    first = runs[0]
    for run in runs[1:]:
        if run.other_params() != first.other_params():
            tasks = (params_task(run.other_params(), run.name), params_task(first.other_params(), first.name))
            if tasks[0] != tasks[1]:
                raise ValueError(
                    f"{run.name} and {first.name} are not comparable: task {tasks[0]} and task {tasks[1]}"
                )
            raise ValueError(f"{run.name} and {first.name} differ in params other than train.seed")
        for model, frame in run.predictions.items():
            if model in first.predictions:
                problem = comparability_problem(first.predictions[model], frame)
                if problem:
                    raise ValueError(
                        f"{run.name} and {first.name} are not retrainings on one test set: {problem}"
                    )


def headline_values(run: SeedRun, model: str) -> dict[str, float | None]:
    """A run's headline metrics of one model (evaluate.json), and its calibration on test."""
    result = run.metrics.get(model, {})
    values = {metric.label: metric.value_in(result) for metric in PAIRED}
    if "subtype" in result:  # task: subtype
        values |= {metric.label: metric.value_in(result) for metric in SUBTYPE_PAIRED}
    frame = run.predictions.get(model)
    if frame is not None:
        targets = (frame["actual"] == MALIGNANT).to_numpy().astype(int)
        measured = calibration_metrics(targets, frame["probability"].to_numpy(dtype=float))
        values |= {CALIBRATION[key]: value for key, value in measured.items()}
    return values


def code_warnings(runs: Sequence[SeedRun]) -> list[str]:
    """Runs whose code differs from the first's: their spread includes that change too."""
    return [
        f"{run.name} ran other code than {runs[0].name} (breakhis/, stages/, commands/ or dvc.yaml "
        "differ): the spread "
        "includes that change"
        for run in runs[1:]
        if run.code != runs[0].code
    ]


def spread_table(runs: Sequence[SeedRun]) -> pd.DataFrame:
    """One row per model and headline metric: the value of each seed, mean, std (n-1) and range."""
    rows = []
    models = [
        m for m in runs[0].metrics if isinstance(runs[0].metrics[m], dict) and "image" in runs[0].metrics[m]
    ]
    for model in models:
        per_run = [headline_values(run, model) for run in runs]
        for title in (*(m.label for m in PAIRED), *(m.label for m in SUBTYPE_PAIRED), *CALIBRATION.values()):
            values = [entry.get(title) for entry in per_run]
            if any(not isinstance(v, int | float) for v in values):
                continue
            array = np.asarray(values, dtype=float)
            rows.append(
                {
                    "model": model,
                    "metric": title,
                    **{f"seed {run.train_seed}": value for run, value in zip(runs, values, strict=True)},
                    "mean": float(array.mean()),
                    "std": float(array.std(ddof=1)),
                    "range": float(np.ptp(array)),
                }
            )
    return pd.DataFrame(rows)


def false_alarms(runs: Sequence[SeedRun], *, resamples: int, confidence: float, seed: int) -> pd.DataFrame:
    """Every later seed against the first, paired: the verdict counts per trained model (the colour
    baseline does not depend on the training seed)."""
    rows = []
    first = runs[0]
    for model in (m for m in first.predictions if m != COLOUR_BASELINE):
        counts = dict.fromkeys((BETTER, WORSE, NOISE), 0)
        for run in runs[1:]:
            if model not in run.predictions:
                continue
            result = paired_comparison(
                first.predictions[model],
                run.predictions[model],
                resamples=resamples,
                confidence=confidence,
                seed=seed,
            )
            for entry in result["metrics"].values():
                if entry["verdict"] in counts:
                    counts[entry["verdict"]] += 1
        rows.append({"model": model, **counts})
    return pd.DataFrame(rows)


def markdown(label: str, runs: Sequence[SeedRun], spread: pd.DataFrame, alarms: pd.DataFrame) -> str:
    seeds = [f"seed {run.train_seed}" for run in runs]
    lines = [
        f"# Seed spread `{label}`: {len(runs)} trainings of one configuration",
        "",
        f"Only `train.seed` differs ({', '.join(str(r.train_seed) for r in runs)}): same data, split, "
        "test images and code. The spread is training noise: a change between two runs smaller than "
        "it says nothing.",
        "",
        *table(
            ["Model", "Metric", *seeds, "mean ± std", "range"],
            (
                [row["model"], row["metric"], *(number(row[s]) for s in seeds)]
                + [mean_std(row["mean"], row["std"]), number(row["range"])]
                for row in spread.to_dict("records")
            ),
            "ll" + "r" * (len(seeds) + 2),
        ),
    ]
    total = int(alarms[[BETTER, WORSE, NOISE]].to_numpy().sum()) if len(alarms) else 0
    called = int(alarms[[BETTER, WORSE]].to_numpy().sum()) if len(alarms) else 0
    lines += [f"\n- **WARNING: {warning}**" for warning in code_warnings(runs)]
    lines += [
        "",
        f"**Paired comparison of each seed against seed {runs[0].train_seed}** (the PR comment's "
        f"verdicts): {called} of {total} model-metric comparisons were called {BETTER} or {WORSE} "
        "although only the seed changed.",
        "",
        *table(
            ["Model", BETTER, WORSE, NOISE],
            ([r["model"], str(r[BETTER]), str(r[WORSE]), str(r[NOISE])] for r in alarms.to_dict("records")),
            "lrrr",
        ),
        "",
    ]
    return "\n".join(lines)
