"""Saving matplotlib figures as PNGs whose bytes depend on their content only (git holds them)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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
