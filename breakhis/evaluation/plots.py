"""Plot data for `dvc plots` (CSV, no Infinity values) and PNG figures for humans.

ROC, precision-recall, reliability and the binary confusion matrix plot P(malignant): a binary
model's output, or the sum of a subtype model's four malignant subtypes (breakhis.pipeline.task).
`subtype_confusion/<model>.csv` holds each test image's actual subtype and its predicted subtype
(task: subtype) or class (task: binary: which subtypes a binary model gets wrong)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from breakhis.data.task_of import ACTUAL_SUBTYPE_COLUMN, SUBTYPE_PROBABILITY_COLUMNS, task_of
from breakhis.evaluation.calibration import reliability_bins
from breakhis.evaluation.decision import RunDecision
from breakhis.evaluation.errors import THRESHOLD_FIGURE, sensitivity_specificity
from breakhis.pipeline.figures import save_figure
from breakhis.pipeline.param_types import COLOUR_BASELINE, ENSEMBLE
from breakhis.pipeline.paths import member_log_dirs, train_log_dir, training_curve, validation_curve
from breakhis.pipeline.task import BINARY_CLASSES as CLASS_NAMES
from breakhis.pipeline.task import SUBTYPE_CLASSES, malignant_probability, predicted_subtypes


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


def legend_outside(axes: plt.Axes) -> None:
    """The legend right of the axes, never over the data."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize="small")


def roc_figure(curves: dict[str, pd.DataFrame], summary: dict[str, Any]) -> plt.Figure:
    """Every model's ROC curve on one chart; each legend entry names its test ROC AUC."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        auc = summary[name]["image"].get("roc_auc")
        axes.plot(points["fpr"], points["tpr"], label=name if auc is None else f"{name} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC 0.500)")
    axes.set(
        xlabel="false positive rate (1 - specificity)",
        ylabel="true positive rate (sensitivity)",
        title="ROC, test split",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    legend_outside(axes)
    return figure


def precision_recall_figure(
    curves: dict[str, pd.DataFrame], summary: dict[str, Any], prevalence: float
) -> plt.Figure:
    """Every model's precision-recall curve (legend: its average precision), and the prevalence of
    malignant test images: the precision of a model that knows nothing."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        ap = summary[name]["image"].get("pr_auc")
        axes.plot(
            points["recall"], points["precision"], label=name if ap is None else f"{name} (AP {ap:.3f})"
        )
    axes.axhline(prevalence, linestyle=":", color="grey", label=f"prevalence {prevalence:.2f} (no skill)")
    axes.set(
        xlabel="recall (sensitivity)",
        ylabel="precision",
        title="Precision-recall, test split",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    legend_outside(axes)
    return figure


def reliability_figure(bins: dict[str, pd.DataFrame], summary: dict[str, Any]) -> plt.Figure:
    """Reliability diagram: fraction malignant against mean predicted probability per bin, the
    diagonal being perfect calibration; below it, how many test images each bin holds (a point over
    a handful of images says little)."""
    figure, (axes, counts) = plt.subplots(
        2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    width = 0.1 / (len(bins) + 1)
    for offset, (name, table) in enumerate(bins.items()):
        ece = summary[name]["calibration"]["ece"]
        line = axes.plot(
            table["mean_predicted"],
            table["fraction_malignant"],
            marker="o",
            markersize=4,
            label=f"{name} (ECE {ece:.3f})",
        )
        lefts = np.floor(table["mean_predicted"] * 10) / 10  # the bin each point stands for
        counts.bar(
            lefts + (offset + 0.5) * width, table["images"], width, align="edge", color=line[0].get_color()
        )
    axes.set(ylabel="fraction malignant", title="Reliability, test split", xlim=(0, 1), ylim=(0, 1.02))
    counts.set(xlabel="mean predicted probability (malignant)", ylabel="images per bin")
    legend_outside(axes)
    return figure


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


def magnification_figure(table: pd.DataFrame, majority: float | None) -> plt.Figure:
    """Grouped bars: accuracy per magnification (rows) for each model (columns), and the accuracy of
    always answering the train split's majority class."""
    figure, axes = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(table.columns)
    for offset, model in enumerate(table.columns):
        axes.bar(np.arange(len(table)) + offset * width, table[model], width, label=model)
    if majority is not None:
        axes.axhline(majority, linestyle="--", color="black", label=f"majority class ({majority:.2f})")
    axes.set(
        xticks=np.arange(len(table)) + 0.4 - width / 2,
        xticklabels=table.index,
        ylim=(0, 1),
        ylabel="image accuracy",
        title="Accuracy per magnification (test split)",
    )
    legend_outside(axes)
    return figure


def threshold_figure(
    roc: dict[str, pd.DataFrame], summary: dict[str, Any], decision: RunDecision
) -> plt.Figure:
    """Sensitivity (solid) and specificity (dashed) of each model against the decision threshold,
    with a dot where each model's chosen threshold puts it."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, points in roc.items():
        curve = sensitivity_specificity(points)
        line = axes.step(curve["threshold"], curve["sensitivity"], where="pre", label=f"{name} sensitivity")
        colour = line[0].get_color()
        axes.step(
            curve["threshold"],
            curve["specificity"],
            where="pre",  # between two thresholds, the rates of the next higher one (p >= t)
            linestyle="--",
            color=colour,
            label=f"{name} specificity",
        )
        chosen = decision.threshold(name)
        image = summary[name]["image"]
        axes.plot(
            [chosen, chosen],
            [np.nan if image[key] is None else image[key] for key in ("recall", "specificity")],
            marker="o",
            linestyle=":",
            color=colour,
            label=f"{name} threshold {chosen:.2f}",
        )
    axes.set(
        xlabel="threshold on P(malignant)",
        ylabel="rate",
        title="Sensitivity and specificity against the threshold (test split)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    legend_outside(axes)
    return figure


def kept_epoch(model: str) -> int | None:
    """The epoch (DVCLive step) whose weights the model kept, as its train stage logged it."""
    path = train_log_dir(model) / "metrics.json"
    if not path.exists():
        return None
    kept = json.loads(path.read_text()).get("kept", {})
    return None if kept.get("epoch") is None else int(kept["epoch"])


def training_curves_figure(models: list[str]) -> plt.Figure:
    """Loss and AUC per epoch of each model, from its DVCLive folder: training (dashed) and
    validation (solid) in the model's colour, and a star at the epoch whose weights it kept."""
    figure, panels = plt.subplots(1, 2, figsize=(11, 3.8))
    shown = {}  # a seed ensemble's curves are its first network's, and say so
    for model in models:
        others = len(member_log_dirs(model))
        shown[model] = f"{model} (first of {others + 1} seeds)" if others else model
    for panel, metric in zip(panels, ("loss", "auc"), strict=True):
        for model in models:
            curve = validation_curve(model, metric)
            colour = None
            if curve.exists():
                points = pd.read_csv(curve, sep="\t")
                colour = panel.plot(
                    points["step"], points[metric], marker=".", label=f"{shown[model]} validation"
                )[0]
                kept = kept_epoch(model)
                at = points[points["step"] == kept]
                if not at.empty:
                    panel.plot(
                        at["step"],
                        at[metric],
                        marker="*",
                        markersize=13,
                        linestyle="none",
                        color=colour.get_color(),
                        markeredgecolor="black",
                        label=f"{shown[model]} kept epoch",
                    )
            train = training_curve(model, metric)
            if train.exists():
                points = pd.read_csv(train, sep="\t")
                panel.plot(
                    points["step"],
                    points[metric],
                    linestyle="--",
                    alpha=0.7,
                    color=None if colour is None else colour.get_color(),
                    label=f"{shown[model]} training",
                )
        panel.set(
            xlabel="epoch",
            ylabel=metric,
            title=f"{metric.upper() if metric == 'auc' else metric.capitalize()} per epoch",
        )
    legend_outside(panels[1])
    return figure


def write_evaluation_plots(
    plots_dir: Path,
    rows: pd.DataFrame,
    outputs: dict[str, np.ndarray],
    summary: dict[str, Any],
    decision: RunDecision,
) -> None:
    """Plot data (CSV) for `dvc plots` and PNGs, for every model and the ensemble on the test rows
    (`outputs`: each one's P(malignant), or rows of subtype probabilities), each called at the
    threshold of the run's `decision`."""
    targets = rows["target"].to_numpy()
    roc, precision_recall, accuracy_by_magnification, reliability = {}, {}, {}, {}
    for name, output in outputs.items():
        probs = malignant_probability(output)
        threshold = decision.threshold(name)
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
                **{ACTUAL_SUBTYPE_COLUMN: rows["subtype"].to_numpy()},
                predicted_subtype=predicted_subtypes(output),
                **{column: output[:, i].round(6) for i, column in enumerate(SUBTYPE_PROBABILITY_COLUMNS)},
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
    save(roc_figure(roc, summary), plots_dir / "roc.png")
    models = {name: points for name, points in roc.items() if name != COLOUR_BASELINE}
    save(threshold_figure(models, summary, decision), plots_dir / THRESHOLD_FIGURE)
    save(
        precision_recall_figure(precision_recall, summary, float(targets.mean())),
        plots_dir / "precision_recall.png",
    )
    save(reliability_figure(reliability, summary), plots_dir / "calibration.png")
    majority = summary.get("majority_baseline", {}).get("image_accuracy")
    save(
        magnification_figure(pd.DataFrame(accuracy_by_magnification), majority),
        plots_dir / "by_magnification.png",
    )
    save(
        training_curves_figure([name for name in outputs if name != ENSEMBLE]),
        plots_dir / "training_curves.png",
    )
