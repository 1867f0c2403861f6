"""Tissue painters of the synthetic images: the field's white space and nuclei in a subtype's
morphology (the class signal), filled until a white-space and a nuclear-area budget are met.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from breakhis.data.synthetic_drawing import Rng, Shape, draw_blobs, draw_ellipses, smooth_noise, stain_values
from breakhis.pipeline.task import SUBTYPES

BASE_SIZE = (230, 350)  # (height, width) at which the radii below are given
BENIGN_RADIUS = 3.1  # px, 100X, BASE_SIZE
MALIGNANT_RADIUS = 6.6  # median px, 100X, BASE_SIZE (lognormal spread: about 5-9 px)
MAGNIFICATION_EXPONENT = 0.7  # radius ~ (mag / 100) ** exponent


@dataclass
class Canvas:
    """The field being painted: white space (0/255) and nuclear hematoxylin (100 = 1 unit)."""

    rng: Rng
    white: np.ndarray
    nuclei: np.ndarray
    r: float  # benign nucleus radius in pixels here
    fibre_angle: float

    @property
    def shape(self) -> Shape:
        h, w = self.white.shape
        return h, w

    def white_area(self) -> int:
        return cv2.countNonZero(self.white)

    def nuclear_area(self) -> int:
        """Nuclear pixels not under white space."""
        return cv2.countNonZero(self.nuclei) - cv2.countNonZero(cv2.bitwise_and(self.nuclei, self.white))

    def free(self, x: float, y: float) -> bool:
        """Whether the point is off white space and off nuclei."""
        return bool(self.white[int(y), int(x)] == 0 and self.nuclei[int(y), int(x)] == 0)

    def fibroblasts(self, density: float) -> None:
        """Thin, elongated stromal nuclei along the fibres (both classes)."""
        rng, (h, w), r = self.rng, self.shape, self.r
        n = int(density * h * w / (np.pi * r**2))
        length = r * rng.uniform(1.1, 1.6, n)
        angle = np.degrees(self.fibre_angle) + rng.normal(0, 10, n)
        x, y = rng.uniform(0, w, n), rng.uniform(0, h, n)
        draw_ellipses(self.nuclei, x, y, length, 0.33 * length, angle, stain_values(rng, n))

    def vacuoles(self, target: int) -> None:
        """Round fat vacuoles / tears until ``target`` white pixels (both classes)."""
        rng, (h, w), r = self.rng, self.shape, self.r
        for _ in range(60):
            if self.white_area() >= target:
                return
            size = r * rng.uniform(2.5, 6.0)
            ellipse = rng.uniform(0, w), rng.uniform(0, h), size, size * rng.uniform(0.6, 1.0)
            draw_ellipses(self.white, *map(np.atleast_1d, (*ellipse, rng.uniform(0, 180), 255)))

    def ring(
        self, x: float, y: float, a: float, b: float, tilt: float, spacing: float
    ) -> Sequence[np.ndarray]:
        """Centres and tangent angles (deg) of nuclei evenly spaced on an ellipse."""
        rng = self.rng
        m = max(5, int(np.pi * (a + b) / spacing))
        t = np.linspace(0, 2 * np.pi, m, endpoint=False) + rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.04, m)
        px, py = a * np.cos(t), b * np.sin(t)
        cx = x + px * np.cos(tilt) - py * np.sin(tilt) + rng.normal(0, 0.1 * self.r, m)
        cy = y + px * np.sin(tilt) + py * np.cos(tilt) + rng.normal(0, 0.1 * self.r, m)
        return cx, cy, np.degrees(t + tilt)

    def gland(
        self,
        x: float,
        y: float,
        lumen: float,
        layers: int,
        aspect: float | None = None,
        tilt: float | None = None,
    ) -> None:
        """A lumen ringed by regular luminal nuclei (radial) and flat myoepithelial ones; the
        lumen's aspect (minor / major axis) and tilt (rad) are random unless given."""
        rng, r = self.rng, self.r
        drawn_aspect, drawn_tilt = rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        aspect = drawn_aspect if aspect is None else aspect
        tilt = drawn_tilt if tilt is None else tilt
        a, b = lumen, lumen * aspect
        draw_ellipses(self.white, *map(np.atleast_1d, (x, y, a, b, np.degrees(tilt), 255)))
        cx, cy, tangent = self.ring(x, y, a + 1.2 * r, b + 1.2 * r, tilt, 2.2 * r)
        n = cx.size
        radius = r * rng.uniform(0.93, 1.07, n)
        draw_ellipses(self.nuclei, cx, cy, radius, 0.78 * radius, tangent + 90, stain_values(rng, n))
        if layers > 1:
            cx, cy, tangent = self.ring(x, y, a + 3.0 * r, b + 3.0 * r, tilt, 3.0 * r)
            n = cx.size
            radius = r * rng.uniform(1.0, 1.15, n)
            draw_ellipses(self.nuclei, cx, cy, radius, 0.5 * radius, tangent, stain_values(rng, n))

    def cord(self, x: float, y: float, length: int) -> None:
        """A short straight row of evenly spaced regular nuclei along the fibres."""
        rng, r = self.rng, self.r
        angle = self.fibre_angle + rng.normal(0, 0.2)
        step = np.arange(length) * 2.3 * r
        cx, cy = x + step * np.cos(angle), y + step * np.sin(angle)
        radius = r * rng.uniform(0.93, 1.07, length)
        values = stain_values(rng, length)
        draw_ellipses(self.nuclei, cx, cy, radius, 0.78 * radius, np.full(length, np.degrees(angle)), values)


@dataclass(frozen=True)
class _GlandStyle:
    """How a benign subtype's glands look and lie: lumen radius (in benign nucleus radii), aspect
    (minor / major axis), how often two-layered, spacing (1 touching), on a lattice or random,
    aligned with the fibres, and the share of the leftover nuclei in cords (the rest: rosettes)."""

    lumen: tuple[float, float]
    aspect: tuple[float, float]
    two_layers: float
    spacing: float
    lattice: bool = False
    along_fibres: bool = False
    cords: float = 0.5
    lobules: int = 0  # > 0: glands crowd around this many lobule centres (sd 7 nuclei radii)


GLAND_STYLES = {
    # adenosis: many tiny, round acini crowded into a few lobules, stroma between them
    "A": _GlandStyle(
        lumen=(0.7, 1.3), aspect=(0.75, 1.0), two_layers=0.9, spacing=0.75, cords=0.0, lobules=3
    ),
    # fibroadenoma: ducts compressed into long slits along the fibres, wide stroma, stromal cords
    "F": _GlandStyle(
        lumen=(6.0, 10.0), aspect=(0.08, 0.18), two_layers=0.3, spacing=1.4, along_fibres=True, cords=0.9
    ),
    # tubular adenoma: uniform, large round tubules packed on a lattice
    "TA": _GlandStyle(
        lumen=(2.7, 3.0), aspect=(0.9, 1.0), two_layers=1.0, spacing=1.0, lattice=True, cords=0.0
    ),
}


def _glands(canvas: Canvas, lumen_target: int, nuclear_target: int, style: _GlandStyle) -> None:
    """Glands in a subtype's style until a budget is met (then rosettes and cords)."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    glands = np.empty((0, 3))  # x, y, outer radius
    if style.lattice:
        outer = style.lumen[1] * r + 3.6 * r
        step = 2 * outer * style.spacing
        ys, xs = np.mgrid[-step / 2 : h + step : step * 0.87, -step / 2 : w + step : step]
        xs = xs + (np.arange(xs.shape[0])[:, None] % 2) * step / 2 + rng.uniform(0, step)
        sites = np.stack([xs.ravel(), ys.ravel()], axis=1)
        sites = sites[rng.permutation(len(sites))] + rng.normal(0, 0.06 * step, sites.shape)
    else:
        sites = None
    centres = rng.uniform((0, 0), (w, h), (max(style.lobules, 1), 2))
    for attempt in range(300):
        if canvas.white_area() >= lumen_target or canvas.nuclear_area() >= 0.85 * nuclear_target:
            break
        lumen = r * rng.uniform(*style.lumen)
        layers = 2 if rng.random() < style.two_layers else 1
        outer = lumen + (1.8 if layers == 1 else 3.6) * r
        if sites is not None:
            if attempt >= len(sites):
                break
            x, y = sites[attempt]
        else:
            if style.lobules:
                cx, cy = centres[int(rng.integers(len(centres)))]
                x, y = cx + rng.normal(0, 7 * r), cy + rng.normal(0, 7 * r)
            else:
                x, y = rng.uniform(-0.2 * outer, w + 0.2 * outer), rng.uniform(-0.2 * outer, h + 0.2 * outer)
            if np.any(
                np.hypot(x - glands[:, 0], y - glands[:, 1]) < style.spacing * 0.95 * (outer + glands[:, 2])
            ):
                continue
        glands = np.vstack([glands, (x, y, outer)])
        tilt = canvas.fibre_angle + rng.normal(0, 0.1) if style.along_fibres else None
        canvas.gland(x, y, lumen, layers, rng.uniform(*style.aspect), tilt)
    for _ in range(400):
        if canvas.nuclear_area() >= nuclear_target:
            break
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if not canvas.free(x, y):
            continue
        if rng.random() >= style.cords:
            canvas.gland(x, y, r * rng.uniform(0.6, 1.2), 1)  # a rosette
        else:
            canvas.cord(x, y, int(rng.integers(3, 8)))
    canvas.vacuoles(lumen_target)


def _phyllodes_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Phyllodes tumour: long curved leaf-like clefts, each lined by one layer of small regular
    nuclei, in a cellular stroma (dense stromal nuclei along the fibres)."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    canvas.fibroblasts(0.035)
    for _ in range(40):
        if canvas.white_area() >= 0.9 * lumen_target or canvas.nuclear_area() >= 0.8 * nuclear_target:
            break
        length, width = r * rng.uniform(9, 16), r * rng.uniform(0.5, 1.0)
        angle = canvas.fibre_angle + rng.normal(0, 0.25)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        t = np.linspace(-1, 1, 24)
        bend = rng.normal(0, 0.25) * length
        cx = x + t * length * np.cos(angle) - bend * (1 - t**2) * np.sin(angle)
        cy = y + t * length * np.sin(angle) + bend * (1 - t**2) * np.cos(angle)
        for px, py in zip(cx, cy, strict=True):
            draw_ellipses(canvas.white, *map(np.atleast_1d, (px, py, width * 1.2, width, 0.0, 255)))
        normal = np.arctan2(np.gradient(cy), np.gradient(cx)) + np.pi / 2
        offsets = width + 1.1 * r
        for side in (-1, 1):
            sx, sy = cx + side * offsets * np.cos(normal), cy + side * offsets * np.sin(normal)
            radius = r * rng.uniform(0.93, 1.07, sx.size)
            draw_ellipses(
                canvas.nuclei,
                sx,
                sy,
                radius,
                0.7 * radius,
                np.degrees(normal) + 90,
                stain_values(rng, sx.size),
            )
    _glands(canvas, lumen_target, nuclear_target, _GlandStyle((0.6, 1.2), (0.6, 1.0), 0.0, 1.0, cords=0.8))


def _benign_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int, code: str = "") -> None:
    """Benign: small regular nuclei, organised; the arrangement is the subtype's (GLAND_STYLES,
    `_phyllodes_tissue`); without a subtype, glands of every size, then rosettes and cords."""
    if code == "PT":
        _phyllodes_tissue(canvas, lumen_target, nuclear_target)
        return
    default = _GlandStyle(lumen=(2.2, 4.5), aspect=(0.6, 1.0), two_layers=0.65, spacing=1.0)
    _glands(canvas, lumen_target, nuclear_target, GLAND_STYLES.get(code, default))


def _big_nuclei(canvas: Canvas, x: np.ndarray, y: np.ndarray) -> None:
    """Large pleomorphic nuclei (the malignant class cue) at these centres."""
    rng = canvas.rng
    radius = MALIGNANT_RADIUS / BENIGN_RADIUS * canvas.r * rng.lognormal(0, 0.22, x.size)
    elongation = rng.uniform(0.6, 1.0, x.size)
    draw_blobs(rng, canvas.nuclei, x, y, radius, elongation, stain_values(rng, x.size), 0.12)


def _lobular_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Lobular carcinoma: large pleomorphic cells in single file, chains along the fibres through
    the stroma (no sheets, no glands)."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    for _ in range(200):  # white space: thin retraction streaks along the fibres, not round spaces
        if canvas.white_area() >= lumen_target:
            break
        angle = np.degrees(canvas.fibre_angle) + rng.normal(0, 6)
        streak = (rng.uniform(0, w), rng.uniform(0, h), r * rng.uniform(5, 10), r * rng.uniform(0.4, 0.8))
        draw_ellipses(canvas.white, *map(np.atleast_1d, (*streak, angle, 255)))
    canvas.vacuoles(lumen_target)
    big = MALIGNANT_RADIUS / BENIGN_RADIUS * r
    for _ in range(300):
        if canvas.nuclear_area() >= nuclear_target:
            break
        angle = canvas.fibre_angle + rng.normal(0, 0.12)
        n = int(rng.integers(5, 12))
        step = np.arange(n) * 2.3 * big
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        x, y = x0 + step * np.cos(angle), y0 + step * np.sin(angle) + rng.normal(0, 0.15 * big, n)
        xi, yi = x.astype(int).clip(0, w - 1), y.astype(int).clip(0, h - 1)
        keep = canvas.white[yi, xi] == 0
        _big_nuclei(canvas, x[keep], y[keep])


def _mucinous_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Mucinous carcinoma: a few large pools of (white) mucin holding the white-space budget, with
    small clusters of large nuclei floating in them; more clusters at the pools' edges."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    pools = []
    for _ in range(12):
        if canvas.white_area() >= 0.9 * lumen_target:
            break
        size = r * rng.uniform(7, 13)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        pools.append((x, y, size))
        draw_blobs(
            rng,
            canvas.white,
            np.array([x]),
            np.array([y]),
            np.array([size]),
            rng.uniform(0.6, 0.9, 1),
            np.full(1, 255),
            0.15,
        )
    canvas.vacuoles(lumen_target)
    big = MALIGNANT_RADIUS / BENIGN_RADIUS * r
    for _ in range(200):
        if canvas.nuclear_area() >= nuclear_target:
            break
        if pools and rng.random() < 0.7:
            px, py, size = pools[int(rng.integers(len(pools)))]
            angle, distance = rng.uniform(0, 2 * np.pi), size * rng.uniform(0, 0.8)
            x, y = px + distance * np.cos(angle), py + distance * np.sin(angle)
        else:
            x, y = rng.uniform(0, w), rng.uniform(0, h)
        n = int(rng.integers(4, 9))
        cx, cy = x + rng.normal(0, 1.1 * big, n), y + rng.normal(0, 1.1 * big, n)
        # the cluster sits in the mucin: clear the pool under it
        draw_ellipses(canvas.white, *map(np.atleast_1d, (x, y, 2.4 * big, 2.4 * big, 0.0, 0)))
        _big_nuclei(canvas, cx, cy)


def _papillary_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Papillary carcinoma: branching fronds, each a thin fibrovascular core lined on both sides by
    stratified large nuclei and flanked by a narrow band of white space (the lumen between
    papillae)."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    big = MALIGNANT_RADIUS / BENIGN_RADIUS * r
    core = 0.9 * r
    stack: list[tuple[float, float, float, int]] = []
    for _ in range(400):
        if canvas.nuclear_area() >= nuclear_target:
            break
        if not stack:  # a new papilla, somewhere else
            stack.append((rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi), 0))
        x0, y0, angle, depth = stack.pop(0)
        length = big * rng.uniform(6, 10)
        t = np.linspace(0, 1, 8)
        x, y = x0 + t * length * np.cos(angle), y0 + t * length * np.sin(angle)
        normal = (-np.sin(angle), np.cos(angle))
        if canvas.white_area() < lumen_target:
            for side in (-1, 1):
                gap = core + 2.6 * big
                band = ((x0 + x[-1]) / 2 + side * gap * normal[0], (y0 + y[-1]) / 2 + side * gap * normal[1])
                draw_ellipses(
                    canvas.white, *map(np.atleast_1d, (*band, length / 2, 0.6 * big, np.degrees(angle), 255))
                )
        for side in (-1, 1):
            offset = core + big * rng.uniform(0.9, 1.3, t.size)
            sx = x + side * offset * normal[0] + rng.normal(0, 0.3 * big, t.size)
            sy = y + side * offset * normal[1] + rng.normal(0, 0.3 * big, t.size)
            _big_nuclei(canvas, sx, sy)
        if depth < 2:
            for turn in (-1, 1):
                stack.append((x[-1], y[-1], angle + turn * rng.uniform(0.4, 0.9), depth + 1))
    canvas.vacuoles(lumen_target)


def _malignant_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int, code: str = "") -> None:
    """Malignant: large pleomorphic nuclei; the arrangement is the subtype's: lobular chains,
    mucin pools, papillary fronds, or (ductal, and without a subtype) crowded sheets."""
    painters = {"LC": _lobular_tissue, "MC": _mucinous_tissue, "PC": _papillary_tissue}
    if code in painters:
        painters[code](canvas, lumen_target, nuclear_target)
        return
    _ductal_tissue(canvas, lumen_target, nuclear_target)


def _ductal_tissue(canvas: Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Crowded sheets of large pleomorphic nuclei in random positions and orientations (and some
    scattered single cells), retraction clefts along the sheets, until the budgets are met."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    sheets = smooth_noise(rng, (h, w), 14 * r)
    sheets = (sheets > np.quantile(sheets, 1 - min(0.85, nuclear_target / (h * w) / 0.7))).astype(np.uint8)
    edge = np.flatnonzero(cv2.morphologyEx(sheets, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    for _ in range(90):
        if canvas.white_area() >= lumen_target:
            break
        at = rng.choice(edge) if edge.size and rng.random() < 0.7 else rng.integers(h * w)
        y, x = np.divmod(np.array([at], float), w)
        size = r * rng.uniform(2.0, 6.0, 1)
        draw_blobs(rng, canvas.white, x, y, size, rng.uniform(0.3, 0.8, 1), np.full(1, 255), 0.25)
    canvas.vacuoles(lumen_target)
    big = MALIGNANT_RADIUS / BENIGN_RADIUS * r
    for _ in range(200):
        if canvas.nuclear_area() >= nuclear_target:
            break
        x, y = rng.uniform(0, w, 32), rng.uniform(0, h, 32)
        xi, yi = x.astype(int).clip(0, w - 1), y.astype(int).clip(0, h - 1)
        keep = ((sheets[yi, xi] > 0) | (rng.random(32) < 0.05)) & (canvas.white[yi, xi] == 0)
        x, y = x[keep][:8], y[keep][:8]
        radius = big * rng.lognormal(0, 0.22, x.size)
        elongation = rng.uniform(0.6, 1.0, x.size)
        draw_blobs(rng, canvas.nuclei, x, y, radius, elongation, stain_values(rng, x.size), 0.12)


def paint(rng: Rng, size: Shape, r: float, code: str) -> tuple[Canvas, int, int]:
    """The field's geometry in subtype `code`'s morphology: white space and nuclei, with its
    white-space and nuclear-area budgets (drawn first, from one distribution for every subtype)."""
    malignant = SUBTYPES[code][0] == "malignant"
    h, w = size
    lumen_target = int(rng.uniform(0.05, 0.13) * h * w)
    nuclear_target = int(rng.uniform(0.12, 0.20) * h * w)
    canvas = Canvas(rng, np.zeros(size, np.uint8), np.zeros(size, np.uint8), r, rng.uniform(0, np.pi))
    canvas.fibroblasts(0.015)
    painter = _malignant_tissue if malignant else _benign_tissue
    painter(canvas, lumen_target, nuclear_target, code)
    return canvas, lumen_target, nuclear_target
