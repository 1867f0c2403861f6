"""Drawing primitives of the synthetic images: sub-pixel ellipses and lobulated blobs, smooth
noise and fibre textures, per-nucleus stain values, and the rank matching of density maps to fixed
profiles.
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 2  # fractional bits for sub-pixel cv2 drawing
Rng = np.random.Generator
Shape = tuple[int, int]  # (height, width)


def _fixed(a: np.ndarray) -> list[int]:
    return np.round(np.asarray(a, float) * (1 << SHIFT)).astype(int).tolist()


def draw_ellipses(
    canvas: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    angle: np.ndarray,
    value: np.ndarray,
) -> None:
    """Draw filled ellipses (sub-pixel via ``SHIFT``); later ones overwrite."""
    fixed = [_fixed(a) for a in (cx, cy, ax, ay)]
    angles, values = np.asarray(angle, float).tolist(), np.asarray(value, float).tolist()
    for x, y, a, b, t, v in zip(*fixed, angles, values, strict=True):
        cv2.ellipse(canvas, (x, y), (max(a, 1), max(b, 1)), t, 0, 360, v, -1, cv2.LINE_8, SHIFT)


def draw_blobs(
    rng: Rng,
    canvas: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: np.ndarray,
    elongation: np.ndarray,
    value: np.ndarray,
    irregularity: float,
) -> None:
    """Filled irregular outlines (ellipses with random low harmonics, lobulated), random angles."""
    n, k = cx.size, 16
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    wobble = np.ones((n, k))
    for harmonic in (2, 3, 4):
        amplitude = rng.normal(0, irregularity / harmonic * 2, (n, 1))
        wobble += amplitude * np.cos(harmonic * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    wobble = np.maximum(wobble, 0.45)
    px = radius[:, None] * wobble * np.cos(t)
    py = (radius * elongation)[:, None] * wobble * np.sin(t)
    theta = rng.uniform(0, np.pi, (n, 1))
    x = cx[:, None] + px * np.cos(theta) - py * np.sin(theta)
    y = cy[:, None] + px * np.sin(theta) + py * np.cos(theta)
    points = np.round(np.stack([x, y], axis=-1) * (1 << SHIFT)).astype(np.int32)
    for polygon, v in zip(points, np.asarray(value, float).tolist(), strict=True):
        cv2.fillPoly(canvas, [polygon], v, cv2.LINE_8, SHIFT)


def smooth_noise(rng: Rng, shape: Shape, scale: float) -> np.ndarray:
    """Noise smooth over about ``scale`` pixels (bicubic upsampling of a grid)."""
    h, w = shape
    coarse = rng.standard_normal((int(h / scale) + 3, int(w / scale) + 3), np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Approximate Gaussian blur by two box filters (cost independent of sigma)."""
    k = max(1, round(float(np.sqrt(6 * sigma**2 + 1))) | 1)
    return cv2.blur(cv2.blur(image, (k, k)), (k, k))


def fibers(rng: Rng, shape: Shape, angle: float) -> np.ndarray:
    """Zero-mean, unit-std texture of wavy collagen fibres along ``angle`` (rad)."""
    h, w = shape
    noise = rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=np.float32)
    kernel = np.zeros((15, 15), np.float32)
    dx, dy = 7 * np.cos(angle), 7 * np.sin(angle)
    cv2.line(kernel, (int(7 - dx), int(7 - dy)), (int(7 + dx), int(7 + dy)), 1.0, 1)
    tex = cv2.filter2D(noise, -1, kernel / kernel.sum())
    tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
    grid_y, grid_x = np.indices(shape, dtype=np.float32)
    warp_x, warp_y = (6 * smooth_noise(rng, shape, 30) for _ in range(2))
    tex = cv2.remap(tex, grid_x + warp_x, grid_y + warp_y, cv2.INTER_LINEAR)
    return (tex - tex.mean()) / (tex.std() + 1e-6)


def stain_values(rng: Rng, n: int) -> np.ndarray:
    """Per-nucleus hematoxylin (uint8 canvas units, 100 = 1); one distribution for both classes."""
    return np.clip(rng.normal(1.0, 0.1, n), 0.7, 1.3) * 100


def rank_match(key: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """An image whose pixels, in descending order of ``key``, take the values of ``profile``
    (0 beyond it): the same histogram for every image, the shapes of ``key``."""
    flat = key.ravel()
    k = min(profile.size, flat.size - 1)
    top = np.argpartition(-flat, k)[:k]
    out = np.zeros(flat.size, np.float32)
    out[top[np.argsort(-flat[top], kind="stable")]] = profile[:k]
    return out.reshape(key.shape)


def nuclear_profile(area: int) -> np.ndarray:
    """Hematoxylin of the darkest pixels of a field with ``area`` nuclear pixels: cores from dark
    to medium (chromatin, nucleus-to-nucleus variation), then the blurred rims."""
    core = np.linspace(1.3, 0.75, area, dtype=np.float32)
    rim = np.linspace(0.75, 0.0, int(0.6 * area), endpoint=False, dtype=np.float32)
    return np.concatenate([core, rim])
