"""The seed spread: retrainings of one configuration that differ only in train.seed, the spread of
each headline metric, and how often the paired comparison calls a seed-only change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from breakhis.evaluation.seed_spread import SeedRun, check_runs, false_alarms, markdown, spread_table
from tests.test_comparison import half_right, predictions

SETTINGS = {"resamples": 200, "confidence": 0.95, "seed": 0}


def seed_run(seed: int, accuracy: float, frame: pd.DataFrame, **params: object) -> SeedRun:
    metrics = {
        "custom": {
            "image": {"accuracy": accuracy, "balanced_accuracy": accuracy, "roc_auc": accuracy + 0.1},
            "patient": {"recognition_rate": accuracy},
        },
        "majority_baseline": {"image_accuracy": 0.5},  # not a scored model: no row
    }
    return SeedRun(
        f"seeds-t-t{seed}", seed, {"seed": 42, "train": {"seed": seed}, **params}, metrics, {"custom": frame}
    )


def test_spread_of_each_metric_and_calibration_from_the_predictions() -> None:
    frame = half_right()
    runs = [seed_run(1, 0.6, frame), seed_run(2, 0.7, frame), seed_run(3, 0.8, frame)]
    table = spread_table(runs).set_index("metric")
    accuracy = table.loc["accuracy"]
    assert accuracy[["seed 1", "seed 2", "seed 3"]].tolist() == [0.6, 0.7, 0.8]
    assert accuracy["mean"] == pytest.approx(0.7) and accuracy["std"] == pytest.approx(0.1)
    assert accuracy["range"] == pytest.approx(0.2)
    assert table.loc["ROC AUC", "mean"] == pytest.approx(0.8)
    target = (frame["actual"] == "malignant").to_numpy()
    brier = np.mean((frame["probability"].to_numpy() - target) ** 2)
    assert table.loc["Brier score", "mean"] == pytest.approx(brier) and table.loc["Brier score", "std"] == 0
    assert set(spread_table(runs)["model"]) == {"custom"}


def test_identical_predictions_give_no_false_alarm_and_a_different_one_is_counted() -> None:
    frame = half_right()
    same = false_alarms([seed_run(1, 0.6, frame), seed_run(2, 0.6, frame.copy())], **SETTINGS)
    assert same.to_dict("records") == [{"model": "custom", "better": 0, "worse": 0, "within noise": 4}]
    perfect = predictions(np.ones(100, dtype=bool))
    runs = [seed_run(1, 0.5, frame), seed_run(2, 1.0, perfect)]
    called = false_alarms(runs, **SETTINGS)
    assert called.loc[0, "better"] == 4
    text = markdown("t", runs, spread_table(runs), called)
    assert "4 of 4 model-metric comparisons were called better or worse" in text
    assert "| custom | accuracy | 0.500 | 1.000 | 0.750 ± 0.354 | 0.500 |" in text


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (lambda f: [seed_run(1, 0.5, f)], "at least 2 runs"),
        (lambda f: [seed_run(1, 0.5, f), seed_run(1, 0.6, f)], "share a training seed"),
        (
            lambda f: [seed_run(1, 0.5, f), seed_run(2, 0.6, f, split={"fold": 1})],
            "differ in params other than",
        ),
        (lambda f: [seed_run(1, 0.5, f), seed_run(2, 0.6, f.iloc[5:])], "not retrainings on one test set"),
        (
            lambda f: [seed_run(1, 0.5, f), seed_run(2, 0.6, f, task="subtype")],
            "not comparable: task subtype and task binary",
        ),
    ],
)
def test_runs_that_are_not_retrainings_of_one_configuration_are_refused(runs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_runs(runs(half_right()))


@pytest.mark.slow
def test_seed_spread_retrains_with_two_seeds_as_experiments(tmp_path: Path) -> None:
    from tests.pipeline_repo import TINY, make_repo, run, set_args, stage

    repo = make_repo(tmp_path / "project")
    output = stage("commands.seed_spread", "--label", "e2e", "--seeds", "1", "2", *set_args(TINY), cwd=repo)
    assert "# Seed spread `e2e`: 2 trainings of one configuration" in output
    assert run(["git", "diff", "--stat", "HEAD"], repo) == ""  # the workspace is untouched
    summary = json.loads((repo / "seeds/e2e/summary.json").read_text())
    assert summary["experiments"] == {"seeds-e2e-t1": 1, "seeds-e2e-t2": 2}
    metrics = {(row["model"], row["metric"]) for row in summary["spread"]}
    assert {("custom", "ROC AUC"), ("ensemble", "ECE"), ("colour_baseline", "accuracy")} <= metrics
    colour = next(
        r for r in summary["spread"] if r["model"] == "colour_baseline" and r["metric"] == "ROC AUC"
    )
    assert colour["std"] == 0  # the colour baseline does not depend on the training seed
    again = stage("commands.seed_spread", "--label", "e2e", "--summarise", cwd=repo)
    assert "Running stage" not in again and (repo / "seeds/e2e/summary.md").read_text().strip() in again
    refused = stage("commands.seed_spread", "--label", "e2e", "--seeds", "1", "3", cwd=repo, check=False)
    assert "seeds-e2e-t1 exists on this commit" in refused
