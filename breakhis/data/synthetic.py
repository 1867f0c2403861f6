"""Deterministic synthetic BreaKHis_v1 dataset (real layout and file-name grammar).

The class is in the morphology and not in the colour: a CNN that looks at nuclei and their
arrangement can learn it, a colour histogram with a linear model cannot (ROC AUC near 0.5 under a
patient-grouped split; tests/test_synthetic.py checks both).

Generative model (all randomness from ``np.random.SeedSequence`` keys: one seed, the same bytes):
  * Patients (slide folders). Subtypes go round-robin within each class. One numeric slide root
    per 8 patients of a class holds 2-3 suffixed slides, as 22549AB / 22549CD / 22549G in
    BreakHis: same class and year, any subtype of the class. Images per magnification differ
    between patients (a lognormal patient weight times a per-magnification factor, at least one
    each); every class has exactly ``patients x images_per_magnification`` per magnification.
  * Stain, drawn independently per patient from ONE distribution for both classes: hematoxylin
    and eosin optical-density vectors, stain strengths, white balance and brightness, blur, noise.
    Patients differ far more in colour than the classes do (not at all by construction), so a
    split by image leaks each patient's look and a split by patient does not.
  * Composition, per image and from ONE distribution for both classes: the share of white space
    (lumens, vacuoles, clefts) and of nuclear area, which each class's painter fills (measured on
    the canvas). Then the white-space, nuclear-hematoxylin and cytoplasm maps are rank-matched to
    fixed profiles of these budgets: every image's stain-density histograms are the same function
    of the budgets whatever its class, and only where the densities lie differs. No
    hyperchromasia: malignant nuclei are as dark as benign ones.
  * Morphology, by class (the class signal; radii at 100X in a 230x350 field):
      benign    -> small (3.1 px), round, uniform nuclei, organised: glands with a lumen ringed by
                   radial luminal nuclei and an outer flat myoepithelial layer, small rosettes,
                   evenly spaced cords along the stroma;
      malignant -> large (median 6.6 px, lognormal, about 5-9 px), pleomorphic nuclei (lobulated
                   irregular outlines, any orientation) crowding and overlapping in disorganised
                   sheets, some scattered single cells, retraction clefts along the sheets.
    Radii grow as ``(mag / 100) ** 0.7`` (40X: small dots that show the architecture) and with
    the image size (the field of view of a 700x460 BreakHis image, whatever the pixel size).
  * Colour by Beer-Lambert, ``rgb = white * exp(-(H * h_od + E * e_od))``: purple nuclei and pale
    cytoplasm over pink, fibrous eosin stroma, in the patient's stain.
  * ``atypical_fraction`` of the fields show the other class's morphology (in the patient's own
    stain), as real slides hold benign-looking fields in a carcinoma and vice versa.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from breakhis.data.dataset import image_filename, patient_folder
from breakhis.data.images import MAX_PIXELS, write_bgr
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.task import SUBTYPES

# Optical density per unit stain, RGB order.
HEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29])
EOSIN_OD = np.array([0.17, 0.86, 0.48])
BASE_SIZE = (230, 350)  # (height, width) at which the radii below are given
BENIGN_RADIUS = 3.1  # px, 100X, BASE_SIZE
MALIGNANT_RADIUS = 6.6  # median px, 100X, BASE_SIZE (lognormal spread: about 5-9 px)
MAGNIFICATION_EXPONENT = 0.7  # radius ~ (mag / 100) ** exponent
SHIFT = 2  # fractional bits for sub-pixel cv2 drawing
# Suffixes of the slides that share a numeric root (as 22549AB / 22549CD / 22549G in BreakHis).
SHARED_SUFFIXES = (("AB", "CD", "G"), ("A", "B", "C"), ("CD", "EF", "GH"))
# SeedSequence key tags; keys never end in 0 ([s, 0] and [s] give the same stream).
_TAG_PATIENT, _TAG_IMAGE, _TAG_IDS, _TAG_COUNTS = 1, 2, 3, 4
Rng = np.random.Generator
Shape = tuple[int, int]  # (height, width)


@dataclass(frozen=True, eq=False)
class Patient:
    """Identity and appearance signature of one synthetic patient (slide folder)."""

    index: int
    code: str
    year: int
    slide: str
    h_od: np.ndarray
    e_od: np.ndarray
    h_scale: float
    e_scale: float
    white: np.ndarray
    blur: float
    noise: float

    @property
    def label(self) -> str:
        return SUBTYPES[self.code][0]

    @property
    def folder(self) -> str:
        return patient_folder(self.label[0].upper(), self.code, str(self.year), self.slide)

    def file_name(self, mag: int, seq: int) -> str:
        return image_filename(self.label[0].upper(), self.code, str(self.year), self.slide, mag, seq)


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v), np.float32)


def _shared_roots(rng: Rng, first: int, count: int) -> dict[int, tuple[int, int]]:
    """{patient: (root patient, position in root)} for the slides of a class that share a root:
    one shared root per 8 patients of the class, each of 2 or 3 slides."""
    members = rng.permutation(count) + first
    shared: dict[int, tuple[int, int]] = {}
    start = 0
    for _ in range(count // 8):
        size = int(rng.integers(2, 4))
        group = [int(i) for i in members[start : start + size]]
        shared.update({i: (group[0], k) for k, i in enumerate(group)})
        start += size
    return shared


def _stain(rng: Rng) -> dict[str, Any]:
    """A patient's stain and scanner signature. Independent draws from one distribution for both
    classes; not stratified by class, which would leave each held-out patient's stain missing
    from its class in training (anti-learning: colour baselines scoring below chance)."""
    u = rng.random(14)
    return {
        "h_od": _unit(HEMATOXYLIN_OD + 0.28 * (u[0:3] - 0.5)),
        "e_od": _unit(EOSIN_OD + 0.38 * (u[3:6] - 0.5)),
        "h_scale": float(np.exp(0.76 * (u[6] - 0.5))),  # x0.68 .. x1.46
        "e_scale": float(np.exp(0.96 * (u[7] - 0.5))),  # x0.62 .. x1.62
        "white": 200 + 55 * u[8] - 24 * u[9:12],  # brightness, white balance
        "blur": float(1.2 * u[12]),
        "noise": float(1 + 5 * u[13]),
    }


def _make_patients(seed: int, benign: int, malignant: int) -> list[Patient]:
    """Subtypes round-robin within each class; unique slide ids, a few shared roots per class
    (same year); a stain signature per slide folder."""
    ids_rng = np.random.default_rng(np.random.SeedSequence([seed, _TAG_IDS]))
    numbers = ids_rng.choice(20000, size=benign + malignant, replace=False) + 10000
    plan = []
    for label, count in (("benign", benign), ("malignant", malignant)):
        codes = [code for code, (lab, _) in SUBTYPES.items() if lab == label]
        plan += [codes[i % len(codes)] for i in range(count)]
    shared = {**_shared_roots(ids_rng, 0, benign), **_shared_roots(ids_rng, benign, malignant)}
    suffixes = ids_rng.choice(["", "", "", "A", "D", "AB", "EF"], size=len(plan)).tolist()
    roots = sorted({root for root, _ in shared.values()})
    patterns = {root: SHARED_SUFFIXES[int(ids_rng.integers(len(SHARED_SUFFIXES)))] for root in roots}
    for i, (root, position) in shared.items():
        suffixes[i] = patterns[root][position]
    years = ids_rng.choice([13, 14, 15], size=len(plan), p=[0.1, 0.8, 0.1])
    patients: list[Patient] = []
    for i, code in enumerate(plan):
        root = shared.get(i, (i, 0))[0]
        stain = _stain(np.random.default_rng(np.random.SeedSequence([seed, _TAG_PATIENT, i])))
        patients.append(Patient(i, code, int(years[root]), f"{numbers[root]}{suffixes[i]}", **stain))
    return patients


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into len(weights) integers >= 1, proportional to the weights beyond one each
    (largest remainders)."""
    quota = (total - weights.size) * weights / weights.sum()
    counts = np.floor(quota).astype(int)
    left = total - weights.size - int(counts.sum())
    counts[np.argsort(counts - quota, kind="stable")[:left]] += 1
    return counts + 1


def _image_counts(
    seed: int, patients: Sequence[Patient], magnifications: Sequence[int], per_magnification: int
) -> dict[tuple[int, int], int]:
    """{(patient index, magnification): number of images}: each patient gets a weight (some have
    many images, some few, as in BreakHis) times a small per-magnification factor; every class
    has exactly ``len(patients of the class) x per_magnification`` images per magnification."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _TAG_COUNTS]))
    weight = rng.lognormal(0, 0.7, len(patients))
    counts: dict[tuple[int, int], int] = {}
    for mag in magnifications:
        mag_rng = np.random.default_rng(np.random.SeedSequence([seed, _TAG_COUNTS, mag]))
        factor = mag_rng.lognormal(0, 0.25, len(patients))
        for label in ("benign", "malignant"):
            members = [p.index for p in patients if p.label == label]
            if members:
                split = _apportion(len(members) * per_magnification, weight[members] * factor[members])
                counts.update({(i, mag): int(n) for i, n in zip(members, split, strict=True)})
    return counts


# ---- drawing ------------------------------------------------------------------------------------


def _fixed(a: np.ndarray) -> list[int]:
    return np.round(np.asarray(a, float) * (1 << SHIFT)).astype(int).tolist()


def _draw_ellipses(
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


def _draw_blobs(
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


def _smooth_noise(rng: Rng, shape: Shape, scale: float) -> np.ndarray:
    """Noise smooth over about ``scale`` pixels (bicubic upsampling of a grid)."""
    h, w = shape
    coarse = rng.standard_normal((int(h / scale) + 3, int(w / scale) + 3), np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Approximate Gaussian blur by two box filters (cost independent of sigma)."""
    k = max(1, round(float(np.sqrt(6 * sigma**2 + 1))) | 1)
    return cv2.blur(cv2.blur(image, (k, k)), (k, k))


def _fibers(rng: Rng, shape: Shape, angle: float) -> np.ndarray:
    """Zero-mean, unit-std texture of wavy collagen fibres along ``angle`` (rad)."""
    h, w = shape
    noise = rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=np.float32)
    kernel = np.zeros((15, 15), np.float32)
    dx, dy = 7 * np.cos(angle), 7 * np.sin(angle)
    cv2.line(kernel, (int(7 - dx), int(7 - dy)), (int(7 + dx), int(7 + dy)), 1.0, 1)
    tex = cv2.filter2D(noise, -1, kernel / kernel.sum())
    tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR)
    grid_y, grid_x = np.indices(shape, dtype=np.float32)
    warp_x, warp_y = (6 * _smooth_noise(rng, shape, 30) for _ in range(2))
    tex = cv2.remap(tex, grid_x + warp_x, grid_y + warp_y, cv2.INTER_LINEAR)
    return (tex - tex.mean()) / (tex.std() + 1e-6)


def _stain_values(rng: Rng, n: int) -> np.ndarray:
    """Per-nucleus hematoxylin (uint8 canvas units, 100 = 1); one distribution for both classes."""
    return np.clip(rng.normal(1.0, 0.1, n), 0.7, 1.3) * 100


def _rank_match(key: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """An image whose pixels, in descending order of ``key``, take the values of ``profile``
    (0 beyond it): the same histogram for every image, the shapes of ``key``."""
    flat = key.ravel()
    k = min(profile.size, flat.size - 1)
    top = np.argpartition(-flat, k)[:k]
    out = np.zeros(flat.size, np.float32)
    out[top[np.argsort(-flat[top], kind="stable")]] = profile[:k]
    return out.reshape(key.shape)


def _nuclear_profile(area: int) -> np.ndarray:
    """Hematoxylin of the darkest pixels of a field with ``area`` nuclear pixels: cores from dark
    to medium (chromatin, nucleus-to-nucleus variation), then the blurred rims."""
    core = np.linspace(1.3, 0.75, area, dtype=np.float32)
    rim = np.linspace(0.75, 0.0, int(0.6 * area), endpoint=False, dtype=np.float32)
    return np.concatenate([core, rim])


# ---- tissue painters: fill a white-space and a nuclear-area budget --------------------------------


@dataclass
class _Canvas:
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
        _draw_ellipses(self.nuclei, x, y, length, 0.33 * length, angle, _stain_values(rng, n))

    def vacuoles(self, target: int) -> None:
        """Round fat vacuoles / tears until ``target`` white pixels (both classes)."""
        rng, (h, w), r = self.rng, self.shape, self.r
        for _ in range(60):
            if self.white_area() >= target:
                return
            size = r * rng.uniform(2.5, 6.0)
            ellipse = rng.uniform(0, w), rng.uniform(0, h), size, size * rng.uniform(0.6, 1.0)
            _draw_ellipses(self.white, *map(np.atleast_1d, (*ellipse, rng.uniform(0, 180), 255)))

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
        _draw_ellipses(self.white, *map(np.atleast_1d, (x, y, a, b, np.degrees(tilt), 255)))
        cx, cy, tangent = self.ring(x, y, a + 1.2 * r, b + 1.2 * r, tilt, 2.2 * r)
        n = cx.size
        radius = r * rng.uniform(0.93, 1.07, n)
        _draw_ellipses(self.nuclei, cx, cy, radius, 0.78 * radius, tangent + 90, _stain_values(rng, n))
        if layers > 1:
            cx, cy, tangent = self.ring(x, y, a + 3.0 * r, b + 3.0 * r, tilt, 3.0 * r)
            n = cx.size
            radius = r * rng.uniform(1.0, 1.15, n)
            _draw_ellipses(self.nuclei, cx, cy, radius, 0.5 * radius, tangent, _stain_values(rng, n))

    def cord(self, x: float, y: float, length: int) -> None:
        """A short straight row of evenly spaced regular nuclei along the fibres."""
        rng, r = self.rng, self.r
        angle = self.fibre_angle + rng.normal(0, 0.2)
        step = np.arange(length) * 2.3 * r
        cx, cy = x + step * np.cos(angle), y + step * np.sin(angle)
        radius = r * rng.uniform(0.93, 1.07, length)
        values = _stain_values(rng, length)
        _draw_ellipses(self.nuclei, cx, cy, radius, 0.78 * radius, np.full(length, np.degrees(angle)), values)


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


def _glands(canvas: _Canvas, lumen_target: int, nuclear_target: int, style: _GlandStyle) -> None:
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


def _phyllodes_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int) -> None:
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
            _draw_ellipses(canvas.white, *map(np.atleast_1d, (px, py, width * 1.2, width, 0.0, 255)))
        normal = np.arctan2(np.gradient(cy), np.gradient(cx)) + np.pi / 2
        offsets = width + 1.1 * r
        for side in (-1, 1):
            sx, sy = cx + side * offsets * np.cos(normal), cy + side * offsets * np.sin(normal)
            radius = r * rng.uniform(0.93, 1.07, sx.size)
            _draw_ellipses(
                canvas.nuclei,
                sx,
                sy,
                radius,
                0.7 * radius,
                np.degrees(normal) + 90,
                _stain_values(rng, sx.size),
            )
    _glands(canvas, lumen_target, nuclear_target, _GlandStyle((0.6, 1.2), (0.6, 1.0), 0.0, 1.0, cords=0.8))


def _benign_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int, code: str = "") -> None:
    """Benign: small regular nuclei, organised; the arrangement is the subtype's (GLAND_STYLES,
    `_phyllodes_tissue`); without a subtype, glands of every size, then rosettes and cords."""
    if code == "PT":
        _phyllodes_tissue(canvas, lumen_target, nuclear_target)
        return
    default = _GlandStyle(lumen=(2.2, 4.5), aspect=(0.6, 1.0), two_layers=0.65, spacing=1.0)
    _glands(canvas, lumen_target, nuclear_target, GLAND_STYLES.get(code, default))


def _big_nuclei(canvas: _Canvas, x: np.ndarray, y: np.ndarray) -> None:
    """Large pleomorphic nuclei (the malignant class cue) at these centres."""
    rng = canvas.rng
    radius = MALIGNANT_RADIUS / BENIGN_RADIUS * canvas.r * rng.lognormal(0, 0.22, x.size)
    elongation = rng.uniform(0.6, 1.0, x.size)
    _draw_blobs(rng, canvas.nuclei, x, y, radius, elongation, _stain_values(rng, x.size), 0.12)


def _lobular_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Lobular carcinoma: large pleomorphic cells in single file, chains along the fibres through
    the stroma (no sheets, no glands)."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    for _ in range(200):  # white space: thin retraction streaks along the fibres, not round spaces
        if canvas.white_area() >= lumen_target:
            break
        angle = np.degrees(canvas.fibre_angle) + rng.normal(0, 6)
        streak = (rng.uniform(0, w), rng.uniform(0, h), r * rng.uniform(5, 10), r * rng.uniform(0.4, 0.8))
        _draw_ellipses(canvas.white, *map(np.atleast_1d, (*streak, angle, 255)))
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


def _mucinous_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int) -> None:
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
        _draw_blobs(
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
        _draw_ellipses(canvas.white, *map(np.atleast_1d, (x, y, 2.4 * big, 2.4 * big, 0.0, 0)))
        _big_nuclei(canvas, cx, cy)


def _papillary_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int) -> None:
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
                _draw_ellipses(
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


def _malignant_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int, code: str = "") -> None:
    """Malignant: large pleomorphic nuclei; the arrangement is the subtype's: lobular chains,
    mucin pools, papillary fronds, or (ductal, and without a subtype) crowded sheets."""
    painters = {"LC": _lobular_tissue, "MC": _mucinous_tissue, "PC": _papillary_tissue}
    if code in painters:
        painters[code](canvas, lumen_target, nuclear_target)
        return
    _ductal_tissue(canvas, lumen_target, nuclear_target)


def _ductal_tissue(canvas: _Canvas, lumen_target: int, nuclear_target: int) -> None:
    """Crowded sheets of large pleomorphic nuclei in random positions and orientations (and some
    scattered single cells), retraction clefts along the sheets, until the budgets are met."""
    rng, (h, w), r = canvas.rng, canvas.shape, canvas.r
    sheets = _smooth_noise(rng, (h, w), 14 * r)
    sheets = (sheets > np.quantile(sheets, 1 - min(0.85, nuclear_target / (h * w) / 0.7))).astype(np.uint8)
    edge = np.flatnonzero(cv2.morphologyEx(sheets, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    for _ in range(90):
        if canvas.white_area() >= lumen_target:
            break
        at = rng.choice(edge) if edge.size and rng.random() < 0.7 else rng.integers(h * w)
        y, x = np.divmod(np.array([at], float), w)
        size = r * rng.uniform(2.0, 6.0, 1)
        _draw_blobs(rng, canvas.white, x, y, size, rng.uniform(0.3, 0.8, 1), np.full(1, 255), 0.25)
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
        _draw_blobs(rng, canvas.nuclei, x, y, radius, elongation, _stain_values(rng, x.size), 0.12)


def _paint(rng: Rng, size: Shape, r: float, code: str) -> tuple[_Canvas, int, int]:
    """The field's geometry in subtype `code`'s morphology: white space and nuclei, with its
    white-space and nuclear-area budgets (drawn first, from one distribution for every subtype)."""
    malignant = SUBTYPES[code][0] == "malignant"
    h, w = size
    lumen_target = int(rng.uniform(0.05, 0.13) * h * w)
    nuclear_target = int(rng.uniform(0.12, 0.20) * h * w)
    canvas = _Canvas(rng, np.zeros(size, np.uint8), np.zeros(size, np.uint8), r, rng.uniform(0, np.pi))
    canvas.fibroblasts(0.015)
    painter = _malignant_tissue if malignant else _benign_tissue
    painter(canvas, lumen_target, nuclear_target, code)
    return canvas, lumen_target, nuclear_target


def _densities(
    canvas: _Canvas, lumen_target: int, nuclear_target: int, zoom: float, blur: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue (1 - white space), nuclear hematoxylin and cytoplasm maps, each rank-matched to a
    profile of the budgets alone: their histograms do not depend on the morphology."""
    rng, r, size = canvas.rng, canvas.r, canvas.shape
    space = cv2.GaussianBlur(canvas.white.astype(np.float32) / 255, (0, 0), np.hypot(1.2 * zoom, blur))
    edge = np.linspace(1, 0, int(0.3 * lumen_target), endpoint=False, dtype=np.float32)
    space_profile = np.concatenate([np.ones(lumen_target, np.float32), edge])
    depth = cv2.distanceTransform(canvas.white, cv2.DIST_L2, 3)  # orders the inside of lumens too
    tissue = 1 - _rank_match(space + 1e-3 * _wide_blur(space, 2 * r) + 1e-4 * depth, space_profile)
    chromatin = 1 + 0.15 * _smooth_noise(rng, size, 1.5 * zoom)
    nuclei = canvas.nuclei.astype(np.float32) / 100 * chromatin
    nuc = cv2.GaussianBlur(nuclei, (0, 0), np.hypot(0.6 * zoom, blur)) * tissue
    nuc = _rank_match(nuc + 1e-3 * _wide_blur(nuc, 2 * r), _nuclear_profile(nuclear_target))
    near = _wide_blur(np.clip(nuc, 0, 1), 1.6 * r) * (nuc == 0) * tissue  # cytoplasm: around nuclei
    cyto_profile = np.linspace(1, 0, int(1.5 * nuclear_target), endpoint=False, dtype=np.float32)
    return tissue, nuc, _rank_match(near, cyto_profile)


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
    key = [seed, _TAG_IMAGE, patient.index, mag, seq]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    atypical = atypical_fraction > 0 and rng.random() < atypical_fraction
    zoom = float(np.sqrt(size[0] * size[1] / (BASE_SIZE[0] * BASE_SIZE[1])))
    r = BENIGN_RADIUS * zoom * (mag / 100) ** MAGNIFICATION_EXPONENT
    code = patient.code
    if atypical:  # a field of a subtype of the other class
        others = [c for c, (label, _) in SUBTYPES.items() if label != patient.label]
        code = others[int(rng.integers(len(others)))]
    canvas, lumen_target, nuclear_target = _paint(rng, size, r, code)
    blur = patient.blur * zoom  # the patient's focus, applied to the stain densities
    tissue, nuc, cyto = _densities(canvas, lumen_target, nuclear_target, zoom, blur)

    fibres = 0.25 * _fibers(rng, size, canvas.fibre_angle)
    patches = 0.12 * _smooth_noise(rng, size, 25 * zoom)
    stroma: np.ndarray = 0.55 * rng.uniform(0.9, 1.1) * np.maximum(1 + fibres + patches, 0)
    if blur > 0.1:
        stroma = cv2.GaussianBlur(stroma, (0, 0), blur)
    eosin = stroma * (1 - 0.5 * cyto - 0.6 * np.clip(nuc, 0, 1)) * tissue
    haem = (0.05 + 0.25 * cyto) * tissue + nuc
    stains = np.stack([patient.h_scale * patient.h_od, patient.e_scale * patient.e_od]).astype(np.float32)
    rgb = patient.white.astype(np.float32) * np.exp(-(np.stack([haem, eosin], axis=-1) @ stains))
    noisy = rgb + patient.noise * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.ascontiguousarray(np.clip(noisy, 0, 255).astype(np.uint8)[..., ::-1])


def write_synthetic_breakhis(
    root: Path,
    *,
    seed: int,
    benign_patients: int,
    malignant_patients: int,
    images_per_magnification: int,
    magnifications: Sequence[int] = (40, 100, 200, 400),
    image_size: tuple[int, int] = BASE_SIZE,
    atypical_fraction: float = 0.0,
) -> Path:
    """Write the tree under root and return the path of the BreaKHis_v1 folder.

    `images_per_magnification`: the mean number of images per patient and magnification (patients
    differ, see _image_counts). `atypical_fraction`: share of images that show the other class's
    morphology (see render_image). All or nothing: when writing fails (a full disk, an error, Ctrl-C
    or SIGTERM through `run_stage`), the BreaKHis_v1 folder it started is removed again.
    """
    height, width = image_size
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"data.synthetic.image_size {height}x{width} is {height * width:,} pixels per image, over the "
            f"{MAX_PIXELS:,} that ingest reads (a BreakHis field is 460x700)"
        )
    dataset = Path(root) / "BreaKHis_v1"
    if dataset.exists():
        raise FileExistsError(f"{dataset}: exists already; write the synthetic dataset into an empty folder")
    breast = dataset / "histology_slides" / "breast"
    patients = _make_patients(seed, benign_patients, malignant_patients)
    counts = _image_counts(seed, patients, magnifications, images_per_magnification)
    try:
        for patient in patients:
            label, subtype_dir = SUBTYPES[patient.code]
            for mag in magnifications:
                folder = breast / label / "SOB" / subtype_dir / patient.folder / f"{mag}X"
                folder.mkdir(parents=True, exist_ok=True)
                for seq in range(1, counts[patient.index, mag] + 1):
                    path = folder / patient.file_name(mag, seq)
                    image = render_image(patient, mag, seq, seed, image_size, atypical_fraction)
                    write_bgr(path, image)
    except BaseException:
        shutil.rmtree(dataset, ignore_errors=True)
        raise
    return dataset


@contextmanager
def synthetic_breakhis(folder: Path, **options: Any) -> Iterator[Path]:
    """A synthetic BreaKHis_v1 tree written into `folder` (see `write_synthetic_breakhis` for the
    options), yielded, and removed when the block ends however it ends. A leftover `folder` of a
    run that was killed (SIGKILL, out of memory: no cleanup runs then) is removed first, so a
    failed run never leaves a copy of the dataset behind for longer than the next run. The caller
    keeps other runs out of `folder` (ingest holds its output's lock)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        write_synthetic_breakhis(folder, **options)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def subtype_gallery(
    seed: int = 0, size: Shape = BASE_SIZE, magnifications: Sequence[int] = (40, 100, 400)
) -> np.ndarray:
    """One field of each subtype (columns) per magnification (rows), all in one patient's stain: a
    BGR picture of what tells the synthetic subtypes apart (docs/explanation/synthetic-data.md)."""
    patient = _make_patients(seed, 1, 0)[0]
    rows = []
    for mag in magnifications:
        tiles = []
        for code in SUBTYPES:
            tile = render_image(replace(patient, code=code), mag, 1, seed, size)
            cv2.rectangle(tile, (0, 0), (150, 40), (255, 255, 255), -1)
            cv2.putText(tile, f"{code} {mag}X", (6, 31), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2)
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: write a synthetic BreaKHis_v1 tree into OUT_DIR, or (--gallery) the subtype picture."""
    parser = command_parser("breakhis.data.synthetic", __doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument(
        "--gallery", type=Path, help="write one field per subtype and magnification here (a .jpg or .png)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benign-patients", type=int, default=16)
    parser.add_argument("--malignant-patients", type=int, default=22)
    parser.add_argument("--images-per-magnification", type=int, default=3)
    args = parser.parse_args(argv)
    if args.gallery:
        picture = subtype_gallery(args.seed)
        small = cv2.resize(
            picture, (picture.shape[1] // 2, picture.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
        write_bgr(args.gallery, small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(f"wrote {args.gallery}")
        return
    if args.out_dir is None:
        parser.error("give OUT_DIR, or --gallery PATH")
    start = time.perf_counter()
    path = write_synthetic_breakhis(
        args.out_dir,
        seed=args.seed,
        benign_patients=args.benign_patients,
        malignant_patients=args.malignant_patients,
        images_per_magnification=args.images_per_magnification,
    )
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
