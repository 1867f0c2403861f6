"""The evaluation figures carry what a person needs to read them at a glance: checked on the
matplotlib objects (legend labels, reference lines, bin counts, the kept-epoch mark), not on pixels."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from breakhis.evaluation import plots  # noqa: E402
from breakhis.evaluation.calibration import reliability_bins  # noqa: E402
from breakhis.pipeline.figures import grid_figure, overlay_figure  # noqa: E402

RNG = np.random.default_rng(0)
TARGETS = np.array([0] * 20 + [1] * 40)
OUTPUTS = {
    "custom": np.clip(TARGETS * 0.4 + RNG.uniform(0, 0.6, 60), 0, 1),
    "ensemble": np.clip(TARGETS * 0.3 + RNG.uniform(0, 0.7, 60), 0, 1),
}
SUMMARY = {
    "custom": {"image": {"roc_auc": 0.912, "pr_auc": 0.954}, "calibration": {"ece": 0.101}},
    "ensemble": {"image": {"roc_auc": 0.873, "pr_auc": 0.931}, "calibration": {"ece": 0.087}},
}


def legend_labels(axes: plt.Axes) -> list[str]:
    legend = axes.get_legend()
    assert legend is not None, "the chart has no legend"
    return [text.get_text() for text in legend.get_texts()]


def outside_the_axes(figure: plt.Figure, axes: plt.Axes) -> bool:
    """The legend does not cover the plotting area."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legend = axes.get_legend().get_window_extent(renderer)
    return not legend.overlaps(axes.get_window_extent(renderer))


def test_roc_legend_names_each_models_auc() -> None:
    curves = {name: plots.roc_points(TARGETS, p) for name, p in OUTPUTS.items()}
    figure = plots.roc_figure(curves, SUMMARY)
    labels = legend_labels(figure.axes[0])
    assert "custom (AUC 0.912)" in labels and "ensemble (AUC 0.873)" in labels
    assert outside_the_axes(figure, figure.axes[0])
    plt.close(figure)


def test_precision_recall_draws_the_prevalence_line() -> None:
    curves = {name: plots.precision_recall_points(TARGETS, p) for name, p in OUTPUTS.items()}
    figure = plots.precision_recall_figure(curves, SUMMARY, float(TARGETS.mean()))
    axes = figure.axes[0]
    assert "prevalence 0.67 (no skill)" in legend_labels(axes)
    prevalence = next(line for line in axes.get_lines() if line.get_label().startswith("prevalence"))
    assert list(prevalence.get_ydata()) == pytest.approx([40 / 60, 40 / 60])
    assert "custom (AP 0.954)" in legend_labels(axes)
    plt.close(figure)


def test_reliability_shows_the_images_in_each_bin_and_keeps_the_legend_off_the_points() -> None:
    bins = {name: reliability_bins(TARGETS, p) for name, p in OUTPUTS.items()}
    figure = plots.reliability_figure(bins, SUMMARY)
    reliability, counts = figure.axes
    assert counts.get_ylabel() == "images per bin"
    heights = [patch.get_height() for patch in counts.patches]
    assert sum(heights) == 2 * len(TARGETS)  # every image of each model, in its bin
    assert "custom (ECE 0.101)" in legend_labels(reliability)
    assert outside_the_axes(figure, reliability)
    plt.close(figure)


def test_magnification_bars_draw_the_majority_line_beside_the_bars() -> None:
    table = pd.DataFrame({"custom": [0.7, 0.8], "ensemble": [0.75, 0.85]}, index=["100X", "400X"])
    figure = plots.magnification_figure(table, 0.62)
    axes = figure.axes[0]
    assert "majority class (0.62)" in legend_labels(axes)
    majority = next(line for line in axes.get_lines() if line.get_label().startswith("majority"))
    assert set(majority.get_ydata()) == {0.62}
    assert outside_the_axes(figure, axes)
    plt.close(figure)


def test_training_curves_show_training_beside_validation_and_the_kept_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = Path("metrics/train/custom")
    for split, offset in (("train", 0.0), ("eval", 0.1)):
        folder = log / "plots" / "metrics" / split
        folder.mkdir(parents=True)
        for metric in ("loss", "auc"):
            values = (
                np.linspace(0.9, 0.3, 6) + offset if metric == "loss" else np.linspace(0.6, 0.9, 6) - offset
            )
            pd.DataFrame({"step": range(6), metric: values}).to_csv(
                folder / f"{metric}.tsv", sep="\t", index=False
            )
    (log / "metrics.json").write_text(json.dumps({"kept": {"epoch": 3}}))
    figure = plots.training_curves_figure(["custom"])
    for axes in figure.axes:
        labels = [line.get_label() for line in axes.get_lines()]
        assert {"custom validation", "custom training", "custom kept epoch"} <= set(labels)
        kept = next(line for line in axes.get_lines() if line.get_label() == "custom kept epoch")
        assert list(kept.get_xdata()) == [3]
    assert outside_the_axes(figure, figure.axes[1])
    plt.close(figure)

    (log / "seed-43").mkdir()  # a seed ensemble's second network: the curves are the first's
    figure = plots.training_curves_figure(["custom"])
    labels = {line.get_label() for line in figure.axes[0].get_lines()}
    assert "custom (first of 2 seeds) kept epoch" in labels and "custom (first of 2 seeds) training" in labels
    plt.close(figure)


def test_the_grid_title_clears_the_first_rows_captions() -> None:
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    columns = {
        f"model{i} (conv2d)": [(image, "malignant p=0.91, no positive evidence")] * 8 for i in range(4)
    }
    caption = "malignant, ensemble p=0.90\nSOB_M_DC-14-2523-100-001.png"
    figure = grid_figure(
        [image] * 8, [caption] * 8, columns, "Grad-CAM on test images (ensemble threshold 0.50)"
    )
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    title = figure._suptitle.get_window_extent(renderer)  # type: ignore[union-attr]
    for axes in figure.axes[:5]:  # the first row: the image and four models
        assert not title.overlaps(axes.title.get_window_extent(renderer))
    plt.close(figure)


def test_a_predict_overlay_carries_its_probability_and_a_colour_bar() -> None:
    figure = overlay_figure(np.zeros((64, 96, 3), dtype=np.uint8), "custom: p(malignant)=0.87")
    image, bar = figure.axes
    assert image.get_title() == "custom: p(malignant)=0.87"
    assert bar.get_ylabel() == "Grad-CAM: evidence for the call (relative)"
    assert bar.get_ylim() == (0.0, 1.0)
    plt.close(figure)
