"""Deterministic synthetic BreaKHis_v1 dataset (real layout and file-name grammar).

Generative model, per image (all randomness from ``np.random.SeedSequence`` keys):
  * Two stain-density maps are painted and turned into colour by Beer-Lambert,
    ``rgb = white * exp(-(H * h_od + E * e_od))`` (hematoxylin purple, eosin pink).
  * Eosin: wavy fibrous stroma (smeared, warped noise); white lumen / fat holes.
  * Hematoxylin: nuclei as filled cv2 ellipses, pale cytoplasm around them.
      benign    -> small, round, regular, sparse nuclei ringed around gland lumens;
      malignant -> large, pleomorphic (lobulated, varied), darker, crowded clusters.
  * Nucleus radius grows and count shrinks with magnification (40X many small dots).
  * Each patient has its own stain vectors and strengths, white balance, blur and
    noise, drawn independently of the class, so image-level splits leak identity.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.data.dataset import SUBTYPES, image_filename, patient_folder

# Optical density per unit stain, RGB order.
HEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29])
EOSIN_OD = np.array([0.17, 0.86, 0.48])
SHIFT = 2  # fractional bits for sub-pixel cv2.ellipse coordinates
# SeedSequence key tags; keys never end in 0 ([s, 0] and [s] give the same stream).
_TAG_PATIENT, _TAG_IMAGE, _TAG_IDS = 1, 2, 3
Ellipses = tuple[np.ndarray, ...]  # (cx, cy, axis_a, axis_b, angle_deg, value) arrays
Rng = np.random.Generator
Shape = tuple[int, int]  # (height, width)


@dataclass(frozen=True, eq=False)
class Patient:
    """Identity and appearance signature of one synthetic patient."""

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


def _make_patients(seed: int, benign: int, malignant: int) -> list[Patient]:
    """Subtypes round-robin within each class; unique slide ids; per-patient style."""
    ids_rng = np.random.default_rng(np.random.SeedSequence([seed, _TAG_IDS]))
    numbers = ids_rng.choice(20000, size=benign + malignant, replace=False) + 10000
    plan = []
    for label, count in (("benign", benign), ("malignant", malignant)):
        codes = [code for code, (lab, _) in SUBTYPES.items() if lab == label]
        plan += [codes[i % len(codes)] for i in range(count)]
    patients: list[Patient] = []
    for i, code in enumerate(plan):
        suffix = str(ids_rng.choice(["", "", "", "A", "D", "AB", "EF"]))
        year = int(ids_rng.choice([13, 14, 15], p=[0.1, 0.8, 0.1]))
        if benign and malignant and i == benign:  # shared root: 14-21998AB/14-21998CD
            numbers[i], year = numbers[0], patients[0].year
        if benign and malignant and i in (0, benign):
            suffix = "AB" if i == 0 else "CD"
        rng = np.random.default_rng(np.random.SeedSequence([seed, _TAG_PATIENT, i]))
        patients.append(
            Patient(
                index=i,
                code=code,
                year=year,
                slide=f"{numbers[i]}{suffix}",
                h_od=_unit(HEMATOXYLIN_OD + rng.normal(0, 0.07, 3)),
                e_od=_unit(EOSIN_OD + rng.normal(0, 0.09, 3)),
                h_scale=float(rng.uniform(0.8, 1.2)),
                e_scale=float(rng.uniform(0.6, 1.4)),
                white=rng.uniform(215, 255) - rng.uniform(0, 18, 3),
                blur=float(rng.uniform(0.0, 1.3)),
                noise=float(rng.uniform(1.0, 7.0)),
            )
        )
    return patients


def _draw_ellipses(canvas: np.ndarray, *ellipses: np.ndarray) -> None:
    """Draw filled ``Ellipses`` (sub-pixel via ``SHIFT``); later ones overwrite."""
    cx, cy, ax, ay, angle, value = (np.asarray(a, float) for a in ellipses)
    fixed = [np.round(a * (1 << SHIFT)).astype(int).tolist() for a in (cx, cy, ax, ay)]
    for x, y, a, b, t, v in zip(*fixed, angle.tolist(), value.tolist(), strict=True):
        cv2.ellipse(canvas, (x, y), (max(a, 1), max(b, 1)), t, 0, 360, v, -1, cv2.LINE_8, SHIFT)


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


def _benign_nuclei(rng: Rng, shape: Shape, r: float, white: np.ndarray) -> Ellipses:
    """Glands: lumen (drawn into ``white``) ringed by small, regular nuclei."""
    h, w = shape
    lumen = rng.uniform(9, 16) * r / 3.2
    n_glands = max(1, rng.poisson(0.2 * h * w / (np.pi * (lumen + 3 * r) ** 2)))
    gx, gy = rng.uniform(0, w, n_glands), rng.uniform(0, h, n_glands)
    sizes = lumen * rng.uniform(0.7, 1.3, n_glands)
    aspect, tilt = rng.uniform(0.55, 1.0, n_glands), rng.uniform(0, np.pi, n_glands)
    _draw_ellipses(white, gx, gy, sizes, sizes * aspect, np.degrees(tilt), np.full(n_glands, 255))
    parts = []
    for x, y, s, asp, tl in zip(gx, gy, sizes, aspect, tilt, strict=True):
        a, b = s + 1.4 * r, s * asp + 1.4 * r
        m = max(6, int(2 * np.pi * (a + b) / 2 / (2.3 * r)))
        t = np.linspace(0, 2 * np.pi, m, endpoint=False) + rng.normal(0, 0.05, m)
        px, py = a * np.cos(t), b * np.sin(t)
        cx = x + px * np.cos(tl) - py * np.sin(tl) + rng.normal(0, 0.15 * r, m)
        cy = y + px * np.sin(tl) + py * np.cos(tl) + rng.normal(0, 0.15 * r, m)
        parts.append((cx, cy, np.degrees(t + tl)))
    cx, cy, ang = (np.concatenate(p) for p in zip(*parts, strict=True))
    radii = r * rng.uniform(0.9, 1.1, cx.size)
    minor = radii * rng.uniform(0.7, 0.85, cx.size)
    return cx, cy, radii, minor, ang, rng.normal(0.95, 0.06, cx.size)


def _malignant_nuclei(rng: Rng, shape: Shape, r: float) -> Ellipses:
    """Crowded clusters of large, pleomorphic, dark nuclei, some with a second lobe."""
    h, w = shape
    rm = 1.75 * r
    n = int(0.32 * h * w / (np.pi * rm**2 * 0.9))
    centres = rng.uniform((0, 0), (w, h), (rng.integers(1, 4), 2))
    pick = centres[rng.integers(0, len(centres), n)]
    clustered = pick + rng.normal(0, 0.28, (n, 2)) * (w, h)
    scattered = rng.uniform((0, 0), (w, h), (n, 2))
    pos = np.where(rng.random((n, 1)) < 0.75, clustered, scattered)
    radii = rm * rng.lognormal(0, 0.3, n)
    ax2 = radii * rng.uniform(0.5, 1.0, n)
    values = np.clip(rng.normal(1.45, 0.22, n), 0.9, 2.3)
    lobe = rng.random(n) < 0.5
    theta = rng.uniform(0, 2 * np.pi, n)
    offset = 0.5 * radii[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    cx, cy = np.concatenate([pos, (pos + offset)[lobe]]).T
    ax1 = np.concatenate([radii, 0.65 * radii[lobe]])
    ax2 = np.concatenate([ax2, 0.55 * radii[lobe]])
    ang = rng.uniform(0, 180, cx.size)
    return cx, cy, ax1, ax2, ang, np.concatenate([values, values[lobe]])


def _holes_and_fibroblasts(rng: Rng, shape: Shape, r: float, angle: float) -> tuple[Ellipses, Ellipses]:
    """Fat vacuoles / tears (both classes) and thin stromal nuclei along the fibres."""
    h, w = shape
    n = int(rng.integers(0, 3))
    size = rng.uniform(6, 16, n) * r / 3.2
    centres = rng.uniform((0, 0), (w, h), (n, 2)).T
    holes = (*centres, size, size * rng.uniform(0.6, 1, n))
    holes += (rng.uniform(0, 180, n), np.full(n, 255))
    n = int(0.03 * h * w / (np.pi * r**2))
    length = r * rng.uniform(1.0, 1.5, n)
    centres = rng.uniform((0, 0), (w, h), (n, 2)).T
    fibro = (*centres, length, 0.35 * length)
    fibro += (np.degrees(angle) + rng.normal(0, 10, n), rng.normal(0.9, 0.05, n))
    return holes, fibro


def render_image(
    patient: Patient,
    mag: int,
    seq: int,
    seed: int,
    size: tuple[int, int] = (230, 350),
    atypical_fraction: float = 0.0,
) -> np.ndarray:
    """Render one H&E-like BGR uint8 image of ``patient`` at magnification ``mag``.

    With probability ``atypical_fraction`` the field shows the other class's tissue pattern (in
    the patient's own stain), as real slides hold fields that look benign in a carcinoma and vice
    versa: no model can classify every image, and patient-level votes matter.
    """
    key = [seed, _TAG_IMAGE, patient.index, mag, seq]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    atypical = atypical_fraction > 0 and rng.random() < atypical_fraction
    r = 3.2 * (mag / 100) ** 0.8  # benign nucleus radius in pixels
    white, nuclei = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
    fibre_angle = rng.uniform(0, np.pi)
    holes, fibroblasts = _holes_and_fibroblasts(rng, size, r, fibre_angle)
    _draw_ellipses(white, *holes)
    if (patient.label == "benign") != atypical:
        tissue_nuclei = _benign_nuclei(rng, size, r, white)
    else:
        tissue_nuclei = _malignant_nuclei(rng, size, r)
    for *geometry, stain in (fibroblasts, tissue_nuclei):  # uint8: 100 = 1 stain unit
        _draw_ellipses(nuclei, *geometry, np.clip(stain * 100, 0, 255))

    chromatin = 1 + 0.18 * _smooth_noise(rng, size, 1.5)
    nuc = cv2.GaussianBlur(nuclei.astype(np.float32) / 100, (0, 0), 0.6) * chromatin
    nuc_mask = np.clip(nuc, 0, 1)
    cyto = np.clip(_wide_blur(nuc_mask, 1.6 * r) * 2.5, 0, 1)
    tissue = 1 - cv2.GaussianBlur(white.astype(np.float32) / 255, (0, 0), 1.2)

    fibres = 0.25 * _fibers(rng, size, fibre_angle)
    patches = 0.12 * _smooth_noise(rng, size, 25)
    stroma = 0.55 * rng.uniform(0.9, 1.1) * np.maximum(1 + fibres + patches, 0)
    eosin = stroma * (1 - 0.5 * cyto) * (1 - 0.6 * nuc_mask) * tissue
    haem = (0.05 + 0.25 * cyto + nuc) * tissue
    stains = np.stack([patient.h_scale * patient.h_od, patient.e_scale * patient.e_od])
    optical_density = np.stack([haem, eosin], axis=-1) @ stains
    rgb: np.ndarray = patient.white.astype(np.float32) * np.exp(-optical_density)
    if patient.blur > 0.1:
        rgb = cv2.GaussianBlur(rgb, (0, 0), patient.blur)
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
    image_size: tuple[int, int] = (230, 350),
    atypical_fraction: float = 0.0,
) -> Path:
    """Write the tree under root and return the path of the BreaKHis_v1 folder.

    `atypical_fraction`: share of images that show the other class's pattern (see render_image)."""
    dataset = Path(root) / "BreaKHis_v1"
    breast = dataset / "histology_slides" / "breast"
    for patient in _make_patients(seed, benign_patients, malignant_patients):
        label, subtype_dir = SUBTYPES[patient.code]
        for mag in magnifications:
            folder = breast / label / "SOB" / subtype_dir / patient.folder / f"{mag}X"
            folder.mkdir(parents=True, exist_ok=True)
            for seq in range(1, images_per_magnification + 1):
                path = folder / patient.file_name(mag, seq)
                image = render_image(patient, mag, seq, seed, image_size, atypical_fraction)
                if not cv2.imwrite(str(path), image):
                    raise OSError(f"could not write {path}")
    return dataset


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: write a synthetic BreaKHis_v1 tree into OUT_DIR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benign-patients", type=int, default=16)
    parser.add_argument("--malignant-patients", type=int, default=22)
    parser.add_argument("--images-per-magnification", type=int, default=3)
    args = parser.parse_args(argv)
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
