"""Plot data for `dvc plots` (CSV, no Infinity values) and PNG figures for humans."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

CLASS_NAMES = ("benign", "malignant")


def roc_points(targets: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    fpr, tpr, thresholds = skm.roc_curve(targets, probabilities)
    # scikit-learn starts the curve at threshold +inf; a probability threshold of 1 means the same
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)})


def precision_recall_points(targets: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    precision, recall, thresholds = skm.precision_recall_curve(targets, probabilities)
    return pd.DataFrame({"recall": recall, "precision": precision, "threshold": np.append(thresholds, 1.0)})


def curves_png(curves: dict[str, pd.DataFrame], x: str, y: str, title: str, path: Path) -> None:
    """Several models' curves on one chart."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, points in curves.items():
        axes.plot(points[x], points[y], label=name)
    if x == "fpr":
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def confusion_png(counts: np.ndarray, title: str, path: Path) -> None:
    """Confusion matrix with counts and row-normalised fractions in each cell."""
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(4, 3.6))
    axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if fractions[row, col] > 0.5 else "black"
        axes.text(col, row, f"{count}\n{fractions[row, col]:.0%}", ha="center", va="center", color=colour)
    axes.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
        xlabel="predicted",
        ylabel="actual",
        title=title,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
