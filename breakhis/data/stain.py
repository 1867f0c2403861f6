"""Stain normalisation: every image mapped to one reference H&E appearance before any model sees it.

Macenko et al. (ISBI 2009) estimates each image's two stain vectors (hematoxylin, eosin) and
concentration range in optical density and re-renders the image with a fixed reference: the
published reference of the original implementation, as shipped by torchstain's numpy backend. The
reference is a constant, never fitted on any split, so training, evaluation and predict apply the
same mapping and predict needs nothing from the run but `ingest.stain_normalization`.

Robustness (the rule): the stain vectors are estimated from tissue pixels only (optical density
above `TISSUE_OD` in every channel, torchstain's own criterion). An image with fewer than
`MIN_TISSUE_FRACTION` tissue pixels (background, fat, an almost white field), whose tissue has a
single colour (no two stains to separate), or whose estimate fails or gives non-finite values, is
kept as it is and reported (`StainResult.problem`); ingest counts and lists those images.
Normalisation never produces NaN and never stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

StainNormalization = Literal["none", "macenko"]
LIGHT = 240  # transmitted light intensity (torchstain's Io): brighter pixels are background
TISSUE_OD = 0.15  # optical density above which a channel counts as stained (torchstain's beta)
MIN_TISSUE_FRACTION = 0.05
MIN_STAIN_SPREAD = 1e-4  # variance of tissue optical density off its main axis: two stains, not one colour


@dataclass(frozen=True)
class StainResult:
    image: np.ndarray  # uint8 RGB: normalised, or the input unchanged when `problem` is set
    problem: str = ""  # why the image was kept as it is ('' when it was normalised)


def tissue_mask(optical_density: np.ndarray) -> np.ndarray:
    """Pixels (rows of optical density) stained in every channel."""
    return np.all(optical_density >= TISSUE_OD, axis=1)


def optical_density(image: np.ndarray) -> np.ndarray:
    """uint8 RGB image -> optical density per pixel, one row per pixel (torchstain's definition)."""
    return -np.log((image.reshape(-1, 3).astype(np.float64) + 1) / LIGHT)


def normalize_stain(image: np.ndarray, method: StainNormalization) -> StainResult:
    """Map a uint8 RGB image to the reference stain appearance (see the module docstring's rule)."""
    if method == "none":
        return StainResult(image)
    density = optical_density(image)
    stained = tissue_mask(density)
    fraction = float(np.mean(stained))
    if fraction < MIN_TISSUE_FRACTION:
        return StainResult(
            image, f"kept as is: {fraction:.1%} tissue pixels, below {MIN_TISSUE_FRACTION:.0%} needed"
        )
    tissue = density[stained]
    second_spread = np.linalg.eigvalsh(np.cov(tissue.T))[-2]
    if not second_spread > MIN_STAIN_SPREAD:
        return StainResult(image, "kept as is: too little colour variation to tell two stains apart")
    try:
        # a NaN or a division by zero anywhere in the estimate raises instead of reaching the pixels
        with np.errstate(divide="raise", invalid="raise", over="ignore", under="ignore"):
            normalized, _, _ = NumpyMacenkoNormalizer().normalize(
                image, Io=LIGHT, beta=TISSUE_OD, stains=False
            )
    except (np.linalg.LinAlgError, FloatingPointError, ValueError, IndexError) as exc:
        return StainResult(image, f"kept as is: stain estimate failed ({exc})")
    return StainResult(np.ascontiguousarray(normalized, dtype=np.uint8))
