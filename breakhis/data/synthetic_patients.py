"""Synthetic patients (slide folders) and how many images each gets: identities, shared slide
roots, stain signatures and the per-magnification image counts of the synthetic BreaKHis_v1 tree
(breakhis.data.synthetic describes the generative model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from breakhis.data.dataset import image_filename, patient_folder
from breakhis.pipeline.task import SUBTYPES

# Optical density per unit stain, RGB order.
HEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29])
EOSIN_OD = np.array([0.17, 0.86, 0.48])
# Suffixes of the slides that share a numeric root (as 22549AB / 22549CD / 22549G in BreakHis).
SHARED_SUFFIXES = (("AB", "CD", "G"), ("A", "B", "C"), ("CD", "EF", "GH"))
# SeedSequence key tags; keys never end in 0 ([s, 0] and [s] give the same stream).
TAG_PATIENT, TAG_IMAGE, TAG_IDS, TAG_COUNTS = 1, 2, 3, 4


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


def _shared_roots(rng: np.random.Generator, first: int, count: int) -> dict[int, tuple[int, int]]:
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


def _stain(rng: np.random.Generator) -> dict[str, Any]:
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


def make_patients(seed: int, benign: int, malignant: int) -> list[Patient]:
    """Subtypes round-robin within each class; unique slide ids, a few shared roots per class
    (same year); a stain signature per slide folder."""
    ids_rng = np.random.default_rng(np.random.SeedSequence([seed, TAG_IDS]))
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
        stain = _stain(np.random.default_rng(np.random.SeedSequence([seed, TAG_PATIENT, i])))
        patients.append(Patient(i, code, int(years[root]), f"{numbers[root]}{suffixes[i]}", **stain))
    return patients


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into len(weights) integers >= 1, proportional to the weights beyond one each
    (largest remainders)."""
    quota = (total - weights.size) * weights / weights.sum()
    counts = np.floor(quota).astype(int)
    left = total - weights.size - int(counts.sum())
    counts[np.argsort(counts - quota, kind="stable")[:left]] += 1
    return counts + 1


def image_counts(
    seed: int, patients: Sequence[Patient], magnifications: Sequence[int], per_magnification: int
) -> dict[tuple[int, int], int]:
    """{(patient index, magnification): number of images}: each patient gets a weight (some have
    many images, some few, as in BreakHis) times a small per-magnification factor; every class
    has exactly ``len(patients of the class) x per_magnification`` images per magnification."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, TAG_COUNTS]))
    weight = rng.lognormal(0, 0.7, len(patients))
    counts: dict[tuple[int, int], int] = {}
    for mag in magnifications:
        mag_rng = np.random.default_rng(np.random.SeedSequence([seed, TAG_COUNTS, mag]))
        factor = mag_rng.lognormal(0, 0.25, len(patients))
        for label in ("benign", "malignant"):
            members = [p.index for p in patients if p.label == label]
            if members:
                split = apportion(len(members) * per_magnification, weight[members] * factor[members])
                counts.update({(i, mag): int(n) for i, n in zip(members, split, strict=True)})
    return counts
