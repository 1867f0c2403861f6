"""Plot data for `dvc plots` (CSV, no Infinity values) and PNG figures for humans.

ROC, precision-recall, reliability and the binary confusion matrix plot P(malignant): a binary
model's output, or the sum of a subtype model's four malignant subtypes (stages.pipeline.task).
`subtype_confusion/<model>.csv` holds each test image's actual subtype and its predicted subtype
(task: subtype) or class (task: binary: which subtypes a binary model gets wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from stages.evaluation.calibration import reliability_bins
from stages.pipeline.figures import save_figure
from stages.pipeline.params import ENSEMBLE
from stages.pipeline.paths import validation_curve
from stages.pipeline.task import BINARY_CLASSES as CLASS_NAMES
from stages.pipeline.task import SUBTYPE_CLASSES, malignant_probability, predicted_subtypes, task_of


def roc_points(targets: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    fpr, tpr, thresholds = skm.roc_curve(targets, probabilities)
    # scikit-learn starts the curve at threshold +inf; a probability threshold of 1 means the same
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)})


def precision_recall_points(targets: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    precision, recall, thresholds = skm.precision_recall_curve(targets, probabilities)
    return pd.DataFrame({"recall": recall, "precision": precision, "threshold": np.append(thresholds, 1.0)})


def save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    save_figure(figure, path)


def curves_png(curves: dict[str, pd.DataFrame], x: str, y: str, title: str, path: Path) -> None:
    """Several models' curves on one chart."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, points in curves.items():
        axes.plot(points[x], points[y], label=name)
    if x == "fpr":
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right")
    save(figure, path)


def reliability_png(bins: dict[str, pd.DataFrame], summary: dict[str, Any], path: Path) -> None:
    """Reliability diagram: fraction malignant against mean predicted probability per bin (marker
    area: images in the bin); the diagonal is perfect calibration."""
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    for name, table in bins.items():
        ece = summary[name]["calibration"]["ece"]
        line = axes.plot(
            table["mean_predicted"], table["fraction_malignant"], label=f"{name} (ECE {ece:.3f})"
        )
        axes.scatter(
            table["mean_predicted"],
            table["fraction_malignant"],
            s=8 + 2 * table["images"],
            color=line[0].get_color(),
        )
    axes.set(
        xlabel="mean predicted probability (malignant)",
        ylabel="fraction malignant",
        title="Reliability, test split",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.legend(loc="upper left", fontsize="small")
    save(figure, path)


def confusion_png(counts: np.ndarray, title: str, path: Path, labels: tuple[str, ...] = CLASS_NAMES) -> None:
    """Confusion matrix with counts and row-normalised fractions in each cell."""
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 4 + 0.45 * (len(labels) - 2)
    figure, axes = plt.subplots(figsize=(size, size * 0.9))
    axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if fractions[row, col] > 0.5 else "black"
        text = f"{count}\n{fractions[row, col]:.0%}" if len(labels) <= 2 or count else ""
        axes.text(
            col, row, text, ha="center", va="center", color=colour, fontsize=8 if len(labels) > 2 else 10
        )
    axes.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted",
        ylabel="actual",
        title=title,
    )
    save(figure, path)


def magnification_png(table: pd.DataFrame, path: Path) -> None:
    """Grouped bars: accuracy per magnification (rows) for each model (columns)."""
    figure, axes = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(table.columns)
    for offset, model in enumerate(table.columns):
        axes.bar(np.arange(len(table)) + offset * width, table[model], width, label=model)
    axes.set(
        xticks=np.arange(len(table)) + 0.4 - width / 2,
        xticklabels=table.index,
        ylim=(0, 1),
        ylabel="image accuracy",
        title="Accuracy per magnification (test split)",
    )
    axes.legend(loc="lower right", fontsize="small")
    save(figure, path)


def training_curves_png(models: list[str], path: Path) -> None:
    """Validation loss and AUC per epoch of each model, from its DVCLive folder."""
    figure, panels = plt.subplots(1, 2, figsize=(9, 3.5))
    for panel, metric in zip(panels, ("loss", "auc"), strict=True):
        for model in models:
            curve = validation_curve(model, metric)
            if curve.exists():
                points = pd.read_csv(curve, sep="\t")
                panel.plot(points["step"], points[metric], marker=".", label=model)
        panel.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"Validation {metric}")
        panel.legend(fontsize="small")
    save(figure, path)


def write_evaluation_plots(
    plots_dir: Path, rows: pd.DataFrame, outputs: dict[str, np.ndarray], summary: dict[str, Any]
) -> None:
    """Plot data (CSV) for `dvc plots` and PNGs, for every model and the ensemble on the test rows
    (`outputs`: each one's P(malignant), or rows of subtype probabilities)."""
    targets = rows["target"].to_numpy()
    roc, precision_recall, accuracy_by_magnification, reliability = {}, {}, {}, {}
    for name, output in outputs.items():
        probs = malignant_probability(output)
        threshold = summary[name]["threshold"]
        predicted = (probs >= threshold).astype(int)
        roc[name] = roc_points(targets, probs)
        precision_recall[name] = precision_recall_points(targets, probs)
        reliability[name] = reliability_bins(targets, probs)
        by_magnification = pd.DataFrame.from_dict(summary[name]["by_magnification"], orient="index")
        accuracy_by_magnification[name] = by_magnification["accuracy"]
        identity = [c for c in ("filename", "patient", "patient_group", "magnification") if c in rows]
        predictions = rows[identity].assign(
            actual=[CLASS_NAMES[t] for t in targets],
            predicted=[CLASS_NAMES[p] for p in predicted],
            probability=probs.round(6),
        )
        subtypes = {"actual": rows["subtype"].to_numpy()}
        if task_of(output) == "subtype":
            predictions = predictions.assign(
                actual_subtype=rows["subtype"].to_numpy(),
                predicted_subtype=predicted_subtypes(output),
                **{f"p_{code}": output[:, i].round(6) for i, code in enumerate(SUBTYPE_CLASSES)},
            )
            subtypes["predicted"] = predictions["predicted_subtype"].to_numpy()
            counts = skm.confusion_matrix(subtypes["actual"], subtypes["predicted"], labels=SUBTYPE_CLASSES)
            confusion_png(
                counts,
                f"{name}: subtypes (test)",
                plots_dir / f"confusion_subtype_{name}.png",
                SUBTYPE_CLASSES,
            )
        else:
            subtypes["predicted"] = predictions["predicted"].to_numpy()
        for folder, frame in (
            ("roc", roc[name]),
            ("precision_recall", precision_recall[name]),
            ("calibration", reliability[name]),
            ("predictions", predictions),
            ("subtype_confusion", pd.DataFrame(subtypes)),
            ("by_magnification", by_magnification.rename_axis("magnification").reset_index()),
        ):
            (plots_dir / folder).mkdir(parents=True, exist_ok=True)
            frame.to_csv(plots_dir / folder / f"{name}.csv", index=False)
        counts = skm.confusion_matrix(targets, predicted, labels=[0, 1])
        confusion_png(
            counts, f"{name} (test, threshold {threshold:.2f})", plots_dir / f"confusion_{name}.png"
        )
    curves_png(roc, "fpr", "tpr", "ROC, test split", plots_dir / "roc.png")
    curves_png(
        precision_recall,
        "recall",
        "precision",
        "Precision-recall, test split",
        plots_dir / "precision_recall.png",
    )
    reliability_png(reliability, summary, plots_dir / "calibration.png")
    magnification_png(pd.DataFrame(accuracy_by_magnification), plots_dir / "by_magnification.png")
    training_curves_png([name for name in outputs if name != ENSEMBLE], plots_dir / "training_curves.png")
