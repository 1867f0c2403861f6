"""The markdown evaluation report (metrics/report.md) that reviewers read in a pull request."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from breakhis.data.task_of import metrics_task
from breakhis.evaluation.baselines import collapse_warnings
from breakhis.evaluation.decision import RunDecision
from breakhis.evaluation.errors import (
    gallery_lines,
    patient_lines,
    subtype_error_lines,
    synthetic_warning,
    validation_lines,
)
from breakhis.evaluation.metrics import HEADLINE, majority_cells
from breakhis.evaluation.subtype import SUBTYPE_HEADLINE
from breakhis.evaluation.tables import estimate, interval, number, table
from breakhis.pipeline.param_types import ENSEMBLE, EVALUATED, SCORED_MODELS
from breakhis.pipeline.paths import INGEST_METRICS, SPLIT_METRICS

FIGURES = (
    ("ROC", "roc.png"),
    ("Precision-recall", "precision_recall.png"),
    ("Reliability", "calibration.png"),
    ("Accuracy per magnification", "by_magnification.png"),
    ("Training curves", "training_curves.png"),
)


def metrics_table(summary: dict[str, Any], decision: RunDecision) -> list[str]:
    rows = [
        [
            model,
            number(decision.threshold(model), 2),
            *(
                estimate(metric.value_in(summary[model]), summary[model].get("ci", {}).get(metric.name))
                for metric in HEADLINE
            ),
        ]
        for model in EVALUATED
        if model in summary
    ]
    baseline = summary["majority_baseline"]
    rows.append([f"majority class of train ({baseline.get('class', '')})", "", *majority_cells(baseline)])
    return table(
        ["Model", "Threshold", *(metric.title for metric in HEADLINE)], rows, "lr" + "r" * len(HEADLINE)
    )


def subtype_lines(summary: dict[str, Any], confidence: float, link: Path | None = None) -> list[str]:
    """task: subtype: every model's subtype metrics with intervals, the baselines, the per-subtype
    recall of the ensemble, and the paired macro-F1 against the colour baseline. Nothing for a
    binary run."""
    if metrics_task(summary) != "subtype":
        return []
    models = [model for model in EVALUATED if "subtype" in summary.get(model, {})]
    rows = [
        [
            model,
            *(
                estimate(metric.value_in(summary[model]), summary[model]["subtype"]["ci"].get(metric.name))
                for metric in SUBTYPE_HEADLINE
            ),
        ]
        for model in models
    ]
    majority = summary["majority_subtype_baseline"]
    rows.append(
        [
            f"majority subtype of train ({majority['subtype']})",
            number(majority["accuracy"]),
            number(majority["balanced_accuracy"]),
            number(majority["macro_f1"]),
            "0.500",
            number(majority["patient_accuracy"]),
        ]
    )
    per_class = summary.get(ENSEMBLE, {}).get("subtype", {}).get("per_class", {})
    recall_rows = [
        [code, str(entry["images"]), number(entry["recall"]), number(entry["precision"]), number(entry["f1"])]
        for code, entry in per_class.items()
    ]
    versus = [
        [
            model,
            number(result["macro_f1_difference"], sign=True),
            interval(result["low"], result["high"], sign=True),
            result["verdict"],
        ]
        for model in SCORED_MODELS
        if "macro_f1_difference" in (result := summary[model]["subtype"].get("vs_colour_baseline", {}))
    ]
    lines = [
        "## Subtypes (test split)",
        "",
        "The eight subtypes: each image's call is its most probable subtype; the benign/malignant "
        "metrics above are derived from the same outputs (P(malignant) = the sum of the four "
        f"malignant subtypes). Balanced accuracy and macro-F1 average over the subtypes present in "
        f"test; in brackets, {confidence:.0%} intervals resampling patient groups.",
        "",
        *table(
            ["Model", *(metric.title for metric in SUBTYPE_HEADLINE)], rows, "l" + "r" * len(SUBTYPE_HEADLINE)
        ),
        "",
    ]
    if recall_rows:
        lines += [
            "Ensemble per subtype (test images, recall, precision, F1):",
            "",
            *table(["Subtype", "Images", "Recall", "Precision", "F1"], recall_rows, "lrrrr"),
            "",
        ]
    if versus:
        lines += [
            "Against the colour baseline (multinomial logistic regression on colour histograms): "
            "macro-F1 difference on the same test images, paired by patient group.",
            "",
            *table(["Model", "Macro-F1 - colour baseline", "Interval", "Verdict"], versus, "lrll"),
            "",
        ]
    if link is not None:
        lines += [
            " ".join(
                f"![{m} subtype confusion]({link / f'confusion_subtype_{m}.png'})" for m in SCORED_MODELS
            ),
            "",
        ]
    return lines


def magnification_lines(summary: dict[str, Any]) -> list[str]:
    """ROC AUC and accuracy per magnification of the test images; a mark where a model never
    trained on that magnification (its output there is extrapolation)."""
    models = [model for model in EVALUATED if model in summary and summary[model].get("by_magnification")]
    keys = sorted({key for m in models for key in summary[m]["by_magnification"]}, key=lambda k: int(k[:-1]))
    if not models or not keys:
        return []

    def cell(model: str, key: str) -> str:
        entry = summary[model]["by_magnification"].get(key)
        if entry is None:
            return ""
        mark = " †" if entry.get("seen_in_training") is False else ""
        return f"{number(entry.get('roc_auc'))} / {number(entry.get('accuracy'))}{mark}"

    rows = [[key, *(cell(model, key) for model in models)] for key in keys]
    unseen = any("†" in value for row in rows for value in row)
    return [
        "ROC AUC / accuracy per magnification of the test images"
        + (" († a magnification the model never trained on: extrapolation):" if unseen else ":"),
        "",
        *table(["Magnification", *models], rows, "l" + "r" * len(models)),
        "",
    ]


def baseline_lines(summary: dict[str, Any], confidence: float) -> list[str]:
    """How each model compares with the colour baseline, paired on the test images (the verdicts of
    breakhis.evaluation.bootstrap), and which models collapsed."""
    rows = [
        [
            model,
            number(result["auc_difference"], sign=True),
            interval(result["low"], result["high"], sign=True),
            result["verdict"],
        ]
        for model in SCORED_MODELS
        if "auc_difference" in (result := summary.get(model, {}).get("vs_colour_baseline", {}))
    ]
    lines = []
    if rows:
        lines += [
            "**Against the colour baseline** (a logistic regression on colour histograms, fitted on "
            "train): ROC AUC difference on the same test images, with its "
            f"{confidence:.0%} interval resampling patient groups. A model that does not beat it "
            "may have learned stain, not tissue.",
            "",
            *table(["Model", "AUC - colour baseline AUC", "Interval", "Verdict"], rows, "lrll"),
            "",
        ]
    lines += [f"- **WARNING: {warning}**" for warning in collapse_warnings(summary)]
    return lines


def calibration_lines(summary: dict[str, Any]) -> list[str]:
    """Brier score and ECE of every model on test; with temperature scaling, before it too."""
    models = [m for m in EVALUATED if "calibration" in summary.get(m, {})]
    if not models:
        return []
    scaled = any("temperature" in summary[m]["calibration"] for m in models)
    lines = [
        "**Calibration** (test split; lower is better): Brier score, the mean squared error of the "
        "malignant probability; ECE, the image-weighted gap between predicted probability and "
        "fraction malignant over 10 probability bins"
        + (", after temperature scaling fitted on validation (before it in brackets)." if scaled else "."),
        "",
    ]
    rows = []
    for model in models:
        entry = summary[model]["calibration"]
        before = entry.get("uncalibrated")
        brier, ece = number(entry["brier"]), number(entry["ece"])
        if before:
            brier += f" ({number(before['brier'])})"
            ece += f" ({number(before['ece'])})"
        cells = [model, brier, ece]
        if scaled:
            cells.append(number(entry["temperature"], 2) if "temperature" in entry else "")
        rows.append(cells)
    header = ["Model", "Brier score", "ECE", *(["Temperature"] if scaled else [])]
    lines += table(header, rows, "l" + "r" * (len(header) - 1))
    return [*lines, ""]


def data_lines() -> list[str]:
    lines = []
    if INGEST_METRICS.exists():
        ingest = json.loads(INGEST_METRICS.read_text())
        lines.append(
            f"- Data: {ingest['images']} images of {ingest['patients']} patients "
            f"({ingest['patient_groups']} patient groups), source `{ingest['source']}`, "
            f"{ingest['duplicates']} duplicate(s) dropped."
        )
    if SPLIT_METRICS.exists():
        split = json.loads(SPLIT_METRICS.read_text())
        if split.get("leaky"):
            lines.append(
                "- **WARNING: this split is by image and leaks patients between train and test; "
                "these figures are inflated and not comparable to patient-level results.**"
            )
        parts = ", ".join(
            f"{name} {split[name]['images']} images / {split[name]['patients']} patients"
            for name in ("train", "val", "test")
        )
        lines.append(
            f"- Split `{split['strategy']}` (grouped by `{split['group_by']}`): {parts}; "
            f"leak check {split['leak_check']}."
        )
    return lines


def write_report(
    path: Path,
    summary: dict[str, Any],
    decision: RunDecision,
    plots_dir: Path,
    confidence: float,
    synthetic_models: Sequence[str] = (),
) -> None:
    """The report of the run's metrics (`summary`) and `decision` (thresholds, ensemble weights).
    `synthetic_models`: the models whose descriptions say they trained on synthetic data (a
    warning heads the report)."""
    link = Path(os.path.relpath(plots_dir, path.parent))
    weights = ", ".join(f"{name} {number(weight, 2)}" for name, weight in decision.weights.items())
    lines = [
        "# Evaluation on the test split",
        "",
        *synthetic_warning(list(synthetic_models)),
        *data_lines(),
        f"- {summary['test_images']} test images; ensemble: soft vote with weights {weights}.",
        "",
        *metrics_table(summary, decision),
        "",
        f"In brackets: {confidence:.0%} bootstrap intervals, resampling test patient groups (not images). "
        "Patient recognition rate: mean over test patients of the fraction of their images classified "
        "correctly. Patient accuracy: each patient classified by the mean probability of their images.",
        "",
        *validation_lines(summary, confidence),
        *baseline_lines(summary, confidence),
        "",
        *subtype_error_lines(plots_dir),
        *patient_lines(plots_dir, summary, decision),
        *subtype_lines(summary, confidence, link),
        *magnification_lines(summary),
        *calibration_lines(summary),
        " ".join(f"![{title}]({link / file})" for title, file in FIGURES),
        "",
        *gallery_lines(link, plots_dir),
        " ".join(f"![{m} confusion]({link / f'confusion_{m}.png'})" for m in SCORED_MODELS),
        "",
        f"![Grad-CAM on test images]({link / 'gradcam.png'})",
        "",
        "Intended use, limits, data issues and versions: [model card](model_card.md).",
        "",
    ]
    path.write_text("\n".join(lines))
