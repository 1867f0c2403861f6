"""The one patient-group bootstrap (breakhis.evaluation.bootstrap): what it draws, how it leaves out
undefined values, paired differences and their verdicts; and its four callers, whose intervals
must stay exactly what they were before they shared it (metrics/evaluate.json is compared byte for
byte between runs: same seed, same draws, same skipped resamples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from breakhis.evaluation.baselines import paired_auc_difference
from breakhis.evaluation.bootstrap import (
    BETTER,
    NOISE,
    WORSE,
    GroupBootstrap,
    difference,
    percentile_interval,
    resampling_units,
    verdict,
)
from breakhis.evaluation.comparison import paired_comparison
from breakhis.evaluation.cross_validation.pooled import pooled_intervals
from breakhis.evaluation.metrics import bootstrap_intervals


def test_groups_are_sorted_and_draws_are_numpy_s_integers() -> None:
    bootstrap = GroupBootstrap(["b", "a", "b", "c", "a"])
    assert bootstrap.names == ["a", "b", "c"]
    assert [g.tolist() for g in bootstrap.groups] == [[1, 4], [0, 2], [3]]
    rng = np.random.default_rng(7)
    for draw in bootstrap.draws(5, seed=7):
        chosen = rng.integers(3, size=3)  # the contract: one call per resample, over the sorted groups
        assert draw.chosen.tolist() == chosen.tolist()
        assert draw.rows.tolist() == [i for c in chosen for i in bootstrap.groups[c]]
        assert draw.copies.tolist() == [n for n, c in enumerate(chosen) for _ in bootstrap.groups[c]]
    assert bootstrap.whole().rows.tolist() == [1, 4, 0, 2, 3]


def test_units_are_patient_groups_else_patients() -> None:
    rows = pd.DataFrame({"patient": ["p1", "p2"], "patient_group": ["g", "g"]})
    assert resampling_units(rows).tolist() == ["g", "g"]
    assert resampling_units(rows.drop(columns="patient_group")).tolist() == ["p1", "p2"]


def test_undefined_values_are_left_out_and_a_statistic_never_defined_has_no_interval() -> None:
    bootstrap = GroupBootstrap(["a", "b"])
    intervals = bootstrap.intervals(
        lambda draw: {
            "first": float(draw.chosen[0]),
            "same": 1.0 if draw.chosen[0] == draw.chosen[1] else None,
            "never": None,
        },
        resamples=400,
        confidence=0.9,
        seed=0,
    )
    assert list(intervals) == ["first", "same"]  # in the order the statistics are named
    assert intervals["first"] == {"low": 0.0, "high": 1.0, "resamples": 400}
    assert 150 < intervals["same"]["resamples"] < 250  # about half the draws pick one group twice


def test_a_paired_difference_scores_both_runs_on_the_same_draw() -> None:
    def values(scale: float):  # noqa: ANN202
        return lambda draw: {"sum": scale * draw.rows.sum(), "undefined": None if scale > 1 else 0.0}

    bootstrap = GroupBootstrap(list("abcdefgh"))
    intervals = bootstrap.intervals(
        difference(values(2.0), values(1.0)), resamples=200, confidence=0.95, seed=1
    )
    unpaired = bootstrap.intervals(values(1.0), resamples=200, confidence=0.95, seed=1)
    assert intervals["sum"] == unpaired["sum"]  # 2x - x on the same draw is x on that draw
    assert "undefined" not in intervals


@pytest.mark.parametrize(
    ("low", "high", "word"),
    [(0.01, 0.2, BETTER), (-0.2, -0.01, WORSE), (-0.1, 0.1, NOISE), (0.0, 0.2, NOISE), (-0.2, 0.0, NOISE)],
)
def test_verdicts(low: float, high: float, word: str) -> None:
    assert verdict({"low": low, "high": high, "resamples": 10}) == word


def test_percentile_interval() -> None:
    assert percentile_interval(list(range(101)), 0.5) == {"low": 25.0, "high": 75.0, "resamples": 101}


# ---------------------------------------------------------------------------------------------
# the four callers: intervals recorded from each one's own bootstrap before they shared this one


def four_groups() -> pd.DataFrame:
    """Four patient groups of one class each (benign, malignant, benign, malignant), two patients
    per group and two or three images per patient (an eighth of the resamples draw one class), in
    shuffled rows (the groups are drawn in sorted order, not in the order of their rows)."""
    rng = np.random.default_rng(2024)
    rows = []
    for group in range(4):
        for patient in range(2):
            for image in range(2 + (group + patient) % 2):
                target = group % 2
                rows.append(
                    {
                        "filename": f"g{group}p{patient}-{image}.png",
                        "patient": f"g{group}p{patient}",
                        "patient_group": f"g{group}",
                        "target": target,
                        "model": float(np.clip(0.35 * target + rng.random() * 0.65, 0, 1)),
                        "other": float(rng.random()),
                        "threshold": 0.4 + 0.05 * (group % 3),
                    }
                )
    return pd.DataFrame(rows).sample(frac=1, random_state=0).reset_index(drop=True)


def predictions(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows as a run's plots/evaluate/predictions/<model>.csv, from one probability column."""
    names = np.array(["benign", "malignant"])
    return pd.DataFrame(
        {
            "filename": rows["filename"],
            "patient": rows["patient"],
            "patient_group": rows["patient_group"],
            "actual": names[rows["target"]],
            "predicted": names[(rows[column] >= 0.5).astype(int)],
            "probability": rows[column],
        }
    )


def test_evaluate_s_intervals_are_as_recorded() -> None:
    rows = four_groups()
    intervals = bootstrap_intervals(
        rows, rows["model"].to_numpy(), 0.5, resamples=200, confidence=0.9, seed=3
    )
    assert intervals == RECORDED["bootstrap_intervals"]


def test_the_colour_baseline_comparison_is_as_recorded() -> None:
    rows = four_groups()
    result = paired_auc_difference(
        rows, rows["model"].to_numpy(), rows["other"].to_numpy(), resamples=200, confidence=0.9, seed=3
    )
    assert result == RECORDED["paired_auc_difference"]
    assert result["resamples_skipped"] > 0


def test_the_comparison_of_two_runs_is_as_recorded() -> None:
    rows = four_groups()
    result = paired_comparison(
        predictions(rows, "other"), predictions(rows, "model"), resamples=200, confidence=0.9, seed=3
    )
    assert result == RECORDED["paired_comparison"]


def test_the_pooled_cross_validation_intervals_are_as_recorded() -> None:
    rows = four_groups()
    pooled = rows.assign(
        probability=rows["model"],
        decision=(rows["model"] >= rows["threshold"]).astype(int),
        group=rows["patient_group"],
    )
    assert pooled_intervals(pooled, resamples=200, confidence=0.9, seed=3) == RECORDED["pooled_intervals"]


# recorded with each caller's own bootstrap, before they shared this one; the colour baseline's verdict
# then read "beats" (its word for better)
RECORDED: dict[str, dict] = {
    "bootstrap_intervals": {
        "image_accuracy": {"low": 0.7, "high": 0.9, "resamples": 200},
        "roc_auc": {"low": 0.84, "high": 1.0, "resamples": 174},
        "patient_recognition_rate": {"low": 0.75, "high": 0.9166666666666666, "resamples": 200},
        # every headline rate has its interval (the draws, hence the three above, unchanged)
        "balanced_accuracy": {"low": 0.7, "high": 0.9, "resamples": 174},
        "recall": {"low": 0.6, "high": 1.0, "resamples": 183},
        "specificity": {"low": 0.8, "high": 0.8, "resamples": 191},
        "patient_accuracy": {"low": 1.0, "high": 1.0, "resamples": 200},
    },
    "paired_auc_difference": {
        "auc_difference": 0.24,
        "low": 0.039999999999999925,
        "high": 0.44000000000000006,
        "resamples": 174,
        "verdict": BETTER,
        "resamples_skipped": 26,
    },
    "paired_comparison": {
        "comparable": True,
        "images": 20,
        "patient_groups": 4,
        "metrics": {
            "image_accuracy": {
                "base": 0.6,
                "new": 0.8,
                "difference": 0.20000000000000007,
                "low": 0.0,
                "high": 0.4,
                "resamples": 200,
                "verdict": NOISE,
            },
            "balanced_accuracy": {
                "base": 0.6000000000000001,
                "new": 0.8,
                "difference": 0.19999999999999996,
                "low": 0.0,
                "high": 0.4,
                "resamples": 174,
                "verdict": NOISE,
            },
            "roc_auc": {
                "base": 0.7,
                "new": 0.94,
                "difference": 0.24,
                "low": 0.039999999999999925,
                "high": 0.44000000000000006,
                "resamples": 174,
                "verdict": BETTER,
            },
            "patient_recognition_rate": {
                "base": 0.5833333333333333,
                "new": 0.8333333333333333,
                "difference": 0.25,
                "low": 0.08333333333333326,
                "high": 0.4166666666666667,
                "resamples": 200,
                "verdict": BETTER,
            },
        },
    },
    "pooled_intervals": {
        "image_accuracy": {"low": 0.6, "high": 0.9, "resamples": 200},
        "image_balanced_accuracy": {"low": 0.6, "high": 0.9, "resamples": 174},
        "image_roc_auc": {"low": 0.84, "high": 1.0, "resamples": 174},
        "patient_recognition_rate": {"low": 0.6458333333333333, "high": 0.8968749999999995, "resamples": 200},
        "patient_accuracy": {"low": 1.0, "high": 1.0, "resamples": 200},
    },
}
