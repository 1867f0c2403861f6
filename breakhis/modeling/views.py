"""The views a model has of an ingested field: the whole field, or a grid of patches at native
resolution; with test-time flips, each view's mirrored copies too. Pure NumPy (predict checks its
inputs before TensorFlow is imported); `input_pipeline.inference_views` makes the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from breakhis.pipeline.coherence import scaled_size
from breakhis.pipeline.param_types import Colour
from breakhis.pipeline.train_params import ModelOverrides, TrainParams, fit_settings


@dataclass(frozen=True)
class ViewParams:
    """How a model sees an ingested field (from `train.*` and `evaluate.test_time_flips`)."""

    input: Literal["field", "patches"] = "field"
    patch_scale: float = 1.0
    patches_per_image: int = 1
    test_time_flips: bool = False
    colour: Colour = "rgb"


WHOLE_FIELD = ViewParams()  # the default: the whole field resized, no flips


def grid_offsets(field: tuple[int, int], patch: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners of the fewest evenly spaced patches that cover the field (overlapping)."""
    if patch[0] > field[0] or patch[1] > field[1]:
        raise ValueError(
            f"patches of {patch[0]}x{patch[1]} do not fit in fields of {field[0]}x{field[1]} "
            "(train.image_size must be at most ingest.image_size x train.patch_scale)"
        )
    axes = []
    for length, size in zip(field, patch, strict=True):
        count = math.ceil(length / size)
        axes.append(np.linspace(0, length - size, count).round().astype(int).tolist())
    return [(top, left) for top in axes[0] for left in axes[1]]


def views_per_image(field: tuple[int, int], input_size: tuple[int, int], view: ViewParams) -> int:
    patches = (
        1 if view.input == "field" else len(grid_offsets(scaled_size(field, view.patch_scale), input_size))
    )
    return patches * (4 if view.test_time_flips else 1)


def mean_over_views(probabilities: np.ndarray, views: int) -> np.ndarray:
    """A model's per-view outputs in image order -> one output per image, the mean of its views: a
    probability (shape (n,)) from one sigmoid unit, a row of class probabilities (n, k) from a softmax."""
    outputs = np.asarray(probabilities, dtype="float64")
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    if outputs.ndim == 1:
        return outputs.reshape(-1, views).mean(axis=1)
    return outputs.reshape(-1, views, outputs.shape[1]).mean(axis=1)


def view_params(train: TrainParams, *, test_time_flips: bool) -> ViewParams:
    """How the models of a run see a field, from its `train.*` params."""
    return ViewParams(
        input=train.input,
        patch_scale=train.patch_scale,
        patches_per_image=train.patches_per_image,
        test_time_flips=test_time_flips,
        colour=train.colour,
    )


def training_view(train: TrainParams, own: ModelOverrides) -> ViewParams:
    """How a model (`own`: its section of `models`) sees a field in training: its own
    `patches_per_image` when set."""
    return replace(
        view_params(train, test_time_flips=False),
        patches_per_image=fit_settings(train, own).patches_per_image,
    )
