"""Rendering one synthetic H&E field: a subtype's morphology painted, turned into stain
densities with fixed histograms, and coloured in the patient's stain by Beer-Lambert.
"""

from __future__ import annotations

import cv2
import numpy as np

from breakhis.data.synthetic_drawing import fibers, nuclear_profile, rank_match, smooth_noise, wide_blur
from breakhis.data.synthetic_patients import TAG_IMAGE, Patient
from breakhis.data.synthetic_tissue import (
    BASE_SIZE,
    BENIGN_RADIUS,
    MAGNIFICATION_EXPONENT,
    Canvas,
    paint,
)
from breakhis.pipeline.task import SUBTYPES


def _densities(
    canvas: Canvas, lumen_target: int, nuclear_target: int, zoom: float, blur: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue (1 - white space), nuclear hematoxylin and cytoplasm maps, each rank-matched to a
    profile of the budgets alone: their histograms do not depend on the morphology."""
    rng, r, size = canvas.rng, canvas.r, canvas.shape
    space = cv2.GaussianBlur(canvas.white.astype(np.float32) / 255, (0, 0), np.hypot(1.2 * zoom, blur))
    edge = np.linspace(1, 0, int(0.3 * lumen_target), endpoint=False, dtype=np.float32)
    space_profile = np.concatenate([np.ones(lumen_target, np.float32), edge])
    depth = cv2.distanceTransform(canvas.white, cv2.DIST_L2, 3)  # orders the inside of lumens too
    tissue = 1 - rank_match(space + 1e-3 * wide_blur(space, 2 * r) + 1e-4 * depth, space_profile)
    chromatin = 1 + 0.15 * smooth_noise(rng, size, 1.5 * zoom)
    nuclei = canvas.nuclei.astype(np.float32) / 100 * chromatin
    nuc = cv2.GaussianBlur(nuclei, (0, 0), np.hypot(0.6 * zoom, blur)) * tissue
    nuc = rank_match(nuc + 1e-3 * wide_blur(nuc, 2 * r), nuclear_profile(nuclear_target))
    near = wide_blur(np.clip(nuc, 0, 1), 1.6 * r) * (nuc == 0) * tissue  # cytoplasm: around nuclei
    cyto_profile = np.linspace(1, 0, int(1.5 * nuclear_target), endpoint=False, dtype=np.float32)
    return tissue, nuc, rank_match(near, cyto_profile)


def render_image(
    patient: Patient,
    mag: int,
    seq: int,
    seed: int,
    size: tuple[int, int] = BASE_SIZE,
    atypical_fraction: float = 0.0,
) -> np.ndarray:
    """Render one H&E-like BGR uint8 image of ``patient`` at magnification ``mag``.

    With probability ``atypical_fraction`` the field shows the other class's morphology (in the
    patient's own stain), as real slides hold fields that look benign in a carcinoma and vice
    versa: no model can classify every image, and patient-level votes matter.
    """
    key = [seed, TAG_IMAGE, patient.index, mag, seq]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    atypical = atypical_fraction > 0 and rng.random() < atypical_fraction
    zoom = float(np.sqrt(size[0] * size[1] / (BASE_SIZE[0] * BASE_SIZE[1])))
    r = BENIGN_RADIUS * zoom * (mag / 100) ** MAGNIFICATION_EXPONENT
    code = patient.code
    if atypical:  # a field of a subtype of the other class
        others = [c for c, (label, _) in SUBTYPES.items() if label != patient.label]
        code = others[int(rng.integers(len(others)))]
    canvas, lumen_target, nuclear_target = paint(rng, size, r, code)
    blur = patient.blur * zoom  # the patient's focus, applied to the stain densities
    tissue, nuc, cyto = _densities(canvas, lumen_target, nuclear_target, zoom, blur)

    fibres = 0.25 * fibers(rng, size, canvas.fibre_angle)
    patches = 0.12 * smooth_noise(rng, size, 25 * zoom)
    stroma: np.ndarray = 0.55 * rng.uniform(0.9, 1.1) * np.maximum(1 + fibres + patches, 0)
    if blur > 0.1:
        stroma = cv2.GaussianBlur(stroma, (0, 0), blur)
    eosin = stroma * (1 - 0.5 * cyto - 0.6 * np.clip(nuc, 0, 1)) * tissue
    haem = (0.05 + 0.25 * cyto) * tissue + nuc
    stains = np.stack([patient.h_scale * patient.h_od, patient.e_scale * patient.e_od]).astype(np.float32)
    rgb = patient.white.astype(np.float32) * np.exp(-(np.stack([haem, eosin], axis=-1) @ stains))
    noisy = rgb + patient.noise * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.ascontiguousarray(np.clip(noisy, 0, 255).astype(np.uint8)[..., ::-1])
