"""Tests for stages.data.synthetic: grammar, determinism, class signal, patient signature."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from stages.data.synthetic import SUBTYPES, main, write_synthetic_breakhis

CODES = "A|F|PT|TA|DC|LC|MC|PC"
FOLDER_RE = re.compile(rf"SOB_(B|M)_({CODES})_(1[345])-(\d+[A-Z]*)")
FILE_RE = re.compile(rf"SOB_(B|M)_({CODES})-(1[345])-(\d+[A-Z]*)-(40|100|200|400)-(\d{{3}})\.png")
MAGS = (40, 100, 200, 400)
N_PER_CLASS, N_IMAGES = 8, 2


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(root.rglob("*.png"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _dark_fraction(pixels: np.ndarray) -> float:
    """Fraction of dark, blue-dominant ("nuclear") pixels of a BGR image."""
    gray = pixels.mean(axis=-1)
    return float(((gray < 150) & (pixels[..., 0] > pixels[..., 2])).mean())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_breakhis(
        tmp_path_factory.mktemp("synthetic"),
        seed=7,
        benign_patients=N_PER_CLASS,
        malignant_patients=N_PER_CLASS,
        images_per_magnification=N_IMAGES,
    )


@pytest.fixture(scope="module")
def records(dataset: Path) -> list[dict[str, Any]]:
    """One dict per image: label, patient folder and 64x64 downscaled BGR pixels."""
    rows = []
    for path in sorted(dataset.rglob("*.png")):
        small = cv2.resize(_read(path), (64, 64), interpolation=cv2.INTER_AREA)
        pixels = small.astype(np.float32)
        rows.append({"label": path.parts[-6], "patient": path.parts[-3], "pixels": pixels})
    return rows


def test_layout_and_file_name_grammar(dataset: Path) -> None:
    assert dataset.name == "BreaKHis_v1"
    breast = dataset / "histology_slides" / "breast"
    files = sorted(breast.rglob("*.png"))
    assert len(files) == 2 * N_PER_CLASS * len(MAGS) * N_IMAGES
    patients, codes, mags = set(), set(), set()
    for path in files:
        label, sob, subtype_dir, folder, mag_dir = path.relative_to(breast).parts[:-1]
        folder_match, file_match = (
            FOLDER_RE.fullmatch(folder),
            FILE_RE.fullmatch(path.name),
        )
        assert folder_match and file_match, path
        b_or_m, code, year, slide, mag, _ = file_match.groups()
        assert (b_or_m, code, year, slide) == folder_match.groups()
        assert SUBTYPES[code] == (label, subtype_dir) and sob == "SOB"
        assert b_or_m == label[0].upper() and mag_dir == f"{mag}X"
        patients.add(folder)
        codes.add(code)
        mags.add(int(mag))
    assert len(patients) == 2 * N_PER_CLASS
    assert codes == set(SUBTYPES) and mags == set(MAGS)
    slides = [p.split("-")[1] for p in patients]
    assert len(set(slides)) == len(slides)  # one slide id per patient
    roots = [re.sub(r"[A-Z]+$", "", p.split("_")[-1]) for p in patients]  # "14-21998"
    assert len(set(roots)) == len(roots) - 1  # exactly one shared year-root (AB / CD)
    image = _read(files[0])
    assert image.shape == (230, 350, 3) and image.dtype == np.uint8


def test_all_subtypes_with_four_patients_per_class(tmp_path: Path) -> None:
    root = write_synthetic_breakhis(
        tmp_path,
        seed=1,
        benign_patients=4,
        malignant_patients=4,
        images_per_magnification=1,
        magnifications=(100,),
        image_size=(46, 70),
    )
    files = sorted(root.rglob("*.png"))
    assert {f.name.split("-")[0].split("_")[2] for f in files} == set(SUBTYPES)
    assert _read(files[0]).shape == (46, 70, 3)


def _small_tree(root: Path, seed: int) -> dict[str, str]:
    return _hashes(
        write_synthetic_breakhis(
            root,
            seed=seed,
            benign_patients=4,
            malignant_patients=4,
            images_per_magnification=1,
            magnifications=(40, 400),
        )
    )


def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path: Path) -> None:
    first = _small_tree(tmp_path / "a", seed=3)
    second = _small_tree(tmp_path / "b", seed=3)
    other = _small_tree(tmp_path / "c", seed=4)
    assert len(first) == 16 and first == second
    assert set(other.values()).isdisjoint(first.values())


def test_dark_fraction_separates_classes_patient_disjoint(records: list[dict]) -> None:
    patients = sorted({(r["label"], r["patient"]) for r in records})
    test_patients = {p for i, p in enumerate(patients) if i % 2}  # half of each class
    feature = np.array([_dark_fraction(r["pixels"]) for r in records])
    malignant = np.array([r["label"] == "malignant" for r in records])
    test = np.array([(r["label"], r["patient"]) in test_patients for r in records])
    candidates = np.unique(feature[~test])
    train_acc = [((feature[~test] > t) == malignant[~test]).mean() for t in candidates]
    threshold = candidates[int(np.argmax(train_acc))]
    test_acc = ((feature[test] > threshold) == malignant[test]).mean()
    assert malignant[test].mean() == 0.5  # majority baseline is 50 %
    assert test_acc >= 0.9, (test_acc, threshold)


def test_same_patient_images_are_closer_in_mean_colour(records: list[dict]) -> None:
    colours = np.array([r["pixels"].mean(axis=(0, 1)) for r in records])
    same, different, nearest_is_same = [], [], []
    for label in ("benign", "malignant"):
        idx = [i for i, r in enumerate(records) if r["label"] == label]
        dist = np.linalg.norm(colours[idx][:, None] - colours[idx][None], axis=-1)
        owner = np.array([records[i]["patient"] for i in idx])
        same_patient = owner[:, None] == owner[None]
        same.append(dist[same_patient & ~np.eye(len(idx), dtype=bool)])
        different.append(dist[~same_patient])
        np.fill_diagonal(dist, np.inf)
        nearest_is_same.append(same_patient[np.arange(len(idx)), dist.argmin(axis=1)])
    same_mean = np.concatenate(same).mean()
    different_mean = np.concatenate(different).mean()
    nn_accuracy = np.concatenate(nearest_is_same).mean()
    chance = (len(MAGS) * N_IMAGES - 1) / (N_PER_CLASS * len(MAGS) * N_IMAGES - 1)
    assert same_mean < 0.6 * different_mean, (same_mean, different_mean)
    assert nn_accuracy > 3 * chance, (nn_accuracy, chance)


def test_cli_writes_tree(tmp_path: Path) -> None:
    options = "--seed 5 --benign-patients 1 --malignant-patients 1"
    main([str(tmp_path), *options.split(), "--images-per-magnification", "1"])
    names = sorted(p.name for p in (tmp_path / "BreaKHis_v1").rglob("*.png"))
    assert len(names) == 8 and all(FILE_RE.fullmatch(n) for n in names)


def test_atypical_fields_show_the_other_class_pattern(tmp_path: Path) -> None:
    def dark_by_class(fraction: float, root: Path) -> dict[str, float]:
        tree = write_synthetic_breakhis(
            root,
            seed=5,
            benign_patients=4,
            malignant_patients=4,
            images_per_magnification=2,
            magnifications=(100,),
            atypical_fraction=fraction,
        )
        values: dict[str, list[float]] = {"benign": [], "malignant": []}
        for path in tree.rglob("*.png"):
            small = cv2.resize(_read(path), (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
            values[path.parts[-6]].append(_dark_fraction(small))
        return {label: float(np.mean(v)) for label, v in values.items()}

    typical = dark_by_class(0.0, tmp_path / "typical")
    swapped = dark_by_class(0.999, tmp_path / "swapped")  # (nearly) every field atypical
    assert typical["malignant"] > typical["benign"]
    assert swapped["benign"] > swapped["malignant"]
