"""The markdown evaluation report (metrics/report.md) that reviewers read in a pull request."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HEADLINE = (
    ("image", "accuracy", "Accuracy"),
    ("image", "balanced_accuracy", "Balanced acc."),
    ("image", "recall", "Sensitivity"),
    ("image", "specificity", "Specificity"),
    ("image", "roc_auc", "ROC AUC"),
    ("patient", "recognition_rate", "Patient recognition rate"),
    ("patient", "accuracy", "Patient accuracy"),
)
MODELS = ("custom", "vgg19", "resnet50", "ensemble")
DATA_SUMMARIES = (Path("metrics/ingest.json"), Path("metrics/split.json"))


def metrics_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| Model | " + " | ".join(title for *_, title in HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    for model in MODELS:
        cells = [f"{summary[model][level][key]:.3f}" for level, key, _ in HEADLINE]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    baseline = summary["majority_baseline"]
    lines.append(
        f"| majority class | {baseline['image_accuracy']:.3f} | 0.500 | | | 0.500 | | "
        f"{baseline['patient_accuracy']:.3f} |"
    )
    return lines


def data_lines() -> list[str]:
    lines = []
    ingest_file, split_file = DATA_SUMMARIES
    if ingest_file.exists():
        ingest = json.loads(ingest_file.read_text())
        lines.append(
            f"- Data: {ingest['images']} images of {ingest['patients']} patients "
            f"({ingest['patient_groups']} patient groups), source `{ingest['source']}`, "
            f"{ingest['duplicates']} duplicate(s) dropped."
        )
    if split_file.exists():
        split = json.loads(split_file.read_text())
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


def write_report(path: Path, summary: dict[str, Any], plots_dir: Path) -> None:
    link = Path(os.path.relpath(plots_dir, path.parent))
    lines = [
        "# Evaluation on the test split",
        "",
        *data_lines(),
        f"- Decision threshold {summary['threshold']}; {summary['test_images']} test images.",
        "",
        *metrics_table(summary),
        "",
        "Patient recognition rate: mean over test patients of the fraction of their images "
        "classified correctly. Patient accuracy: each patient classified by the mean probability.",
        "",
        f"![ROC]({link / 'roc.png'}) ![Precision-recall]({link / 'precision_recall.png'})",
        "",
        " ".join(f"![{m} confusion]({link / f'confusion_{m}.png'})" for m in MODELS),
        "",
        f"![Grad-CAM on test images]({link / 'gradcam.png'})",
        "",
        "Intended use, limits, data issues and versions: [model card](model_card.md).",
        "",
    ]
    path.write_text("\n".join(lines))
