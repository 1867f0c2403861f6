"""Saving matplotlib figures as PNGs whose bytes depend on their content only (git holds them)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

# PNG metadata without the matplotlib version, so a figure's bytes depend on its content only
PNG_METADATA = {"Software": None}


def save_figure(figure: plt.Figure, path: Path, *, photos: bool = False) -> None:
    """Write the figure as a PNG and close it.

    `photos`: the figure shows tissue images, which compress badly; quantise it to 256 colours so
    such grids stay a few hundred KB (git holds plots, and refuses files over 2 MB).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not photos:
        figure.savefig(path, dpi=100, metadata=PNG_METADATA)
        plt.close(figure)
        return
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    image.save(path, optimize=True)


def grid_figure(
    images: list[np.ndarray],
    titles: list[str],
    columns: Mapping[str, list[tuple[np.ndarray, str]]],
    title: str,
) -> plt.Figure:
    """Each image (row) with its title, then each model's overlay and caption (columns); the
    layout keeps the figure's title clear of the first row's captions."""
    n_rows, n_cols = max(len(images), 1), 1 + len(columns)
    figure, axes = plt.subplots(
        n_rows, n_cols, figsize=(2.6 * n_cols, 2.0 * n_rows + 0.4), squeeze=False, layout="constrained"
    )
    for axis in axes.ravel():
        axis.axis("off")
    if not images:
        axes[0, 0].text(0, 0.5, "no test images to show", fontsize=9)
    for r, (image, caption) in enumerate(zip(images, titles, strict=True)):
        axes[r, 0].imshow(image)
        axes[r, 0].set_title(caption, fontsize=6)
        for c, (column, cells) in enumerate(columns.items(), start=1):
            picture, label = cells[r]
            axes[r, c].imshow(picture)
            axes[r, c].set_title(f"{column}\n{label}", fontsize=6)
    figure.suptitle(title, fontsize=9)
    return figure


def overlay_figure(picture: np.ndarray, title: str, colormap: str = "jet") -> plt.Figure:
    """One Grad-CAM overlay (an RGB image, the map blended over it in `colormap`) under its title
    (the model and its probability), with a colour bar saying what the colours mean."""
    height, width = picture.shape[:2]
    figure, axes = plt.subplots(figsize=(max(3.0, width / 100 + 1.2), max(2.5, height / 100 + 0.6)))
    axes.imshow(picture)
    axes.set_title(title, fontsize=8)
    axes.axis("off")
    scale = plt.cm.ScalarMappable(cmap=colormap, norm=plt.Normalize(0, 1))
    bar = figure.colorbar(scale, ax=axes, fraction=0.046, pad=0.02)
    bar.set_label("Grad-CAM: evidence for the call (relative)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    figure.tight_layout()
    return figure
