"""The report says what went wrong: a warning for models that never saw a real slide, validation
beside test, errors per subtype, a per-patient table, the most confident mistakes, and sensitivity
and specificity against the threshold (breakhis/evaluation/errors.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from breakhis.evaluation import errors, plots  # noqa: E402
from breakhis.evaluation.decision import RunDecision  # noqa: E402
from breakhis.pipeline.param_types import YOUDEN  # noqa: E402

SUMMARY = {  # no thresholds: the writers read them from the run's decision, not from the metrics
    "custom": {
        "val_roc_auc": 0.97,
        "image": {"roc_auc": 0.80, "recall": 0.75, "specificity": 0.5},
        "ci": {"roc_auc": {"low": 0.6, "high": 0.9}},
    },
    "ensemble": {
        "val_roc_auc": 0.95,
        "image": {"roc_auc": 0.85, "recall": 1.0, "specificity": 0.5},
    },
}


DECISION = RunDecision(
    rule=YOUDEN,
    thresholds={"custom": 0.5, "ensemble": 0.4},
    weights={"custom": 1.0},
    temperatures={},
    validation_images=20,
)


def plot_data(tmp_path: Path) -> Path:
    """Per-image plot data as evaluate writes it: 6 test images of 3 patients."""
    frame = pd.DataFrame(
        {
            "patient": ["p1", "p1", "p2", "p2", "p3", "p3"],
            "actual": ["benign", "benign", "malignant", "malignant", "malignant", "malignant"],
            "subtype": ["PT", "PT", "LC", "LC", "DC", "DC"],
            "probability": [0.9, 0.7, 0.3, 0.6, 0.8, 0.9],
        }
    )
    for model, threshold in (("custom", 0.5), ("ensemble", 0.4)):
        predicted = np.where(frame["probability"] >= threshold, "malignant", "benign")
        for folder, table in (
            ("predictions", frame.assign(predicted=predicted).drop(columns="subtype")),
            ("subtype_confusion", pd.DataFrame({"actual": frame["subtype"], "predicted": predicted})),
        ):
            (tmp_path / folder).mkdir(exist_ok=True)
            table.to_csv(tmp_path / folder / f"{model}.csv", index=False)
    return tmp_path


def test_a_model_trained_on_synthetic_data_heads_the_report_with_a_warning() -> None:
    assert errors.synthetic_warning([]) == []
    warning = "\n".join(errors.synthetic_warning(["custom", "vgg19"]))
    assert "WARNING: custom, vgg19 never saw a real slide" in warning


def test_validation_sits_beside_test() -> None:
    lines = errors.validation_lines(SUMMARY, 0.95)
    assert "| custom | 0.970 | 0.800 | 0.60-0.90 | -0.170 |" in lines
    assert "| ensemble | 0.950 | 0.850 | | -0.100 |" in lines


def test_errors_per_subtype_count_each_models_wrong_images(tmp_path: Path) -> None:
    lines = errors.subtype_error_lines(plot_data(tmp_path))
    assert "| Subtype | Class | Images | custom | ensemble |" in lines
    assert "| PT | benign | 2 | 2 (100%) | 2 (100%) |" in lines  # both call the phyllodes malignant
    assert "| LC | malignant | 2 | 1 (50%) | 1 (50%) |" in lines
    assert "| DC | malignant | 2 | 0 (0%) | 0 (0%) |" in lines


def test_the_patient_table_gives_each_patients_call_and_truth(tmp_path: Path) -> None:
    lines = errors.patient_lines(plot_data(tmp_path), SUMMARY, DECISION)
    assert any("1 of 3 test patients called wrong" in line for line in lines)
    assert "| `p1` | 2 | 0.800 | **malignant** | benign | 0.00 |" in lines
    assert "| `p2` | 2 | 0.450 | malignant | malignant | 0.50 |" in lines


def test_the_most_confident_mistakes_come_first() -> None:
    targets = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([0.95, 0.6, 0.1, 0.45, 0.9])
    assert errors.confident_mistakes(targets, probabilities, 0.5) == [
        (0, "benign called malignant"),
        (2, "malignant called benign"),
        (1, "benign called malignant"),
        (3, "malignant called benign"),
    ]
    assert errors.confident_mistakes(targets, probabilities, 0.5, count=1) == [(0, "benign called malignant")]


def test_sensitivity_and_specificity_against_the_threshold() -> None:
    targets = np.array([0, 0, 1, 1])
    roc = {name: plots.roc_points(targets, np.array([0.1, 0.6, 0.4, 0.9])) for name in ("custom", "ensemble")}
    figure = plots.threshold_figure(roc, SUMMARY, DECISION)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert {"custom sensitivity", "custom specificity", "ensemble threshold 0.40"} <= set(labels)
    chosen = next(line for line in figure.axes[0].get_lines() if line.get_label() == "custom threshold 0.50")
    assert list(chosen.get_xdata()) == [0.5, 0.5] and list(chosen.get_ydata()) == [0.75, 0.5]
    plt.close(figure)
    curve = errors.sensitivity_specificity(roc["custom"])
    at = curve[curve["threshold"] == 0.6].iloc[0]
    assert (at["sensitivity"], at["specificity"]) == (0.5, 0.5)
