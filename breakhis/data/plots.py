"""PNG figures of the data stages, for humans: the split bar chart and the augmentation preview."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from breakhis.data.images import read_rgb  # noqa: E402
from breakhis.pipeline.figures import save_figure  # noqa: E402

CLASS_COLOURS = {"benign": "#e7a3c3", "malignant": "#6a3d9a"}  # eosin pink, hematoxylin purple
SPLIT_NAMES = ("train", "val", "test")


def split_chart(summary: Mapping[str, Any], path: Path) -> None:
    """Images and patients per split, stacked by class, from the metrics/split.json summary."""
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, (key, what) in zip(
        axes, (("images_by_class", "images"), ("patients_by_class", "patients")), strict=True
    ):
        bottom = [0] * len(SPLIT_NAMES)
        for label, colour in CLASS_COLOURS.items():
            values = [int(summary[name][key].get(label, 0)) for name in SPLIT_NAMES]
            bars = ax.bar(SPLIT_NAMES, values, bottom=bottom, color=colour, label=label)
            ax.bar_label(
                bars,
                labels=[str(v) if v else "" for v in values],
                label_type="center",
                fontsize=8,
                color="black" if label == "benign" else "white",
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set(title=what, ylabel=what)
        ax.margins(y=0.12)
        for i, total in enumerate(bottom):
            ax.text(i, total, str(total), ha="center", va="bottom", fontsize=8)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fold = summary.get("fold")
    title = f"split '{summary['strategy']}' by {summary['group_by']}"
    if fold is not None:
        title += f", test fold {fold}"
        if "official_fold" in summary:
            title += f" (Folds.csv fold {summary['official_fold']})"
    title += f"; leak check: {summary['leak_check']}"
    if summary.get("leaky"):
        title = "LEAKY: " + title
    figure.suptitle(title, fontsize=9, color="red" if summary.get("leaky") else "black")
    figure.tight_layout()
    save_figure(figure, path)


def augment_preview(pairs: Sequence[tuple[str, str, str]], path: Path, pairs_per_row: int = 2) -> None:
    """A grid of (source, augmented) images side by side; each pair is (source, new image, caption)."""
    if not pairs:
        figure, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(
            0.5,
            0.5,
            "no new images: the train split already meets augment.target_ratio",
            ha="center",
            va="center",
        )
        ax.axis("off")
        save_figure(figure, path)
        return
    rows = -(-len(pairs) // pairs_per_row)
    columns = 2 * pairs_per_row
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (source, augmented, caption) in enumerate(pairs):
        row, column = divmod(i, pairs_per_row)
        for ax, image_path, text in (
            (axes[row, 2 * column], source, Path(source).stem),
            (axes[row, 2 * column + 1], augmented, caption),
        ):
            ax.imshow(read_rgb(image_path))
            ax.set_title(text, fontsize=6)
    figure.suptitle("augment: source image | its augmented version", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, photos=True)
