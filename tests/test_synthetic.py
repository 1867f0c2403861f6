"""Tests for breakhis.data.synthetic and its breakhis.data.synthetic_* modules: grammar, determinism,
image counts, shared slide roots, patient signature, and that the class is in the morphology and not
in the colour."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from breakhis.data.dataset import parse_image_path
from breakhis.data.synthetic import main, write_synthetic_breakhis
from breakhis.data.synthetic_tissue import BENIGN_RADIUS, MAGNIFICATION_EXPONENT, MALIGNANT_RADIUS
from breakhis.pipeline.task import SUBTYPES

CODES = "A|F|PT|TA|DC|LC|MC|PC"
FOLDER_RE = re.compile(rf"SOB_(B|M)_({CODES})_(1[345])-(\d+[A-Z]*)")
FILE_RE = re.compile(rf"SOB_(B|M)_({CODES})-(1[345])-(\d+[A-Z]*)-(40|100|200|400)-(\d{{3}})\.png")
MAGS = (40, 100, 200, 400)
N_PER_CLASS, N_IMAGES = 8, 2
# Hematoxylin and eosin optical density per unit stain, RGB (Ruifrok & Johnston): a fixed, textbook
# colour deconvolution, blind to each patient's own stain.
H_AND_E = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _hashes(root: Path) -> dict[str, str]:
    files = sorted(root.rglob("*.png"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _colour_features(bgr: np.ndarray) -> np.ndarray:
    """96-bin colour histogram (32 per channel) and per-channel mean and std: what a colour
    shortcut can use."""
    histograms = [np.bincount(bgr[..., c].ravel() >> 3, minlength=32) / bgr[..., c].size for c in range(3)]
    pixels = bgr.reshape(-1, 3).astype(np.float32) / 255
    return np.concatenate([*histograms, pixels.mean(axis=0), pixels.std(axis=0)])


def _large_nucleus_share(bgr: np.ndarray, magnification: int) -> float:
    """Share of the hematoxylin-rich area (Otsu threshold of the deconvolved H channel) in blobs
    too wide for a benign nucleus: what survives a morphological opening with a disc of the
    radius halfway between benign and malignant nuclei at this magnification."""
    optical_density = -np.log((bgr[..., ::-1].astype(np.float32) + 1) / 256).reshape(-1, 3)
    stains = H_AND_E / np.linalg.norm(H_AND_E, axis=1, keepdims=True)
    hematoxylin = (optical_density @ np.linalg.pinv(stains))[:, 0].reshape(bgr.shape[:2])
    scaled = cv2.normalize(hematoxylin, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    radius = (BENIGN_RADIUS + MALIGNANT_RADIUS) / 2 * (magnification / 100) ** MAGNIFICATION_EXPONENT
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(radius) + 1,) * 2)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc)
    return cv2.countNonZero(opened) / max(cv2.countNonZero(mask), 1)


def _grouped_cv_auc(features: np.ndarray, malignant: np.ndarray, groups: np.ndarray, c: float) -> float:
    """Pooled out-of-fold ROC AUC of a logistic regression, 5 folds stratified by class and grouped
    by patient group (the pipeline's split unit, the numeric slide root)."""
    scores = np.zeros(len(malignant))
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    for train, test in folds.split(features, malignant, groups):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        )
        model.fit(features[train], malignant[train])
        scores[test] = model.predict_proba(features[test])[:, 1]
    return float(roc_auc_score(malignant, scores))


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


@pytest.fixture(scope="module")
def colour_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """50 + 50 patients, one image per magnification on average, at half size: colour features,
    class and patient group per image."""
    tree = write_synthetic_breakhis(
        tmp_path_factory.mktemp("cohort"),
        seed=0,
        benign_patients=50,
        malignant_patients=50,
        images_per_magnification=1,
        image_size=(116, 176),
        atypical_fraction=0.15,
    )
    rows: dict[str, list[Any]] = defaultdict(list)
    for path in sorted(tree.rglob("*.png")):
        record = parse_image_path(path)
        rows["colour"].append(_colour_features(_read(path)))
        rows["malignant"].append(record.target)
        rows["group"].append(record.patient_group)
        rows["subtype"].append(record.subtype)
    return {key: np.array(values) for key, values in rows.items()}


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
        assert parse_image_path(path).patient == folder
        patients.add(folder)
        codes.add(code)
        mags.add(int(mag))
    assert len(patients) == 2 * N_PER_CLASS
    assert codes == set(SUBTYPES) and mags == set(MAGS)
    slides = [p.split("-")[1] for p in patients]
    assert len(set(slides)) == len(slides)  # one slide id per patient
    image = _read(files[0])
    assert image.shape == (230, 350, 3) and image.dtype == np.uint8


def test_slides_that_share_a_root_share_the_class(dataset: Path) -> None:
    by_root: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in dataset.rglob("*.png"):
        record = parse_image_path(path)
        by_root[record.patient_group].add((record.label, record.patient))
    shared = {root: members for root, members in by_root.items() if len(members) > 1}
    # one shared root per 8 patients of a class, of 2-3 slides (as 22549AB / 22549CD / 22549G)
    assert sorted({label for members in shared.values() for label, _ in members}) == ["benign", "malignant"]
    assert len(shared) == 2 and all(2 <= len(members) <= 3 for members in shared.values())
    assert all(len({label for label, _ in members}) == 1 for members in shared.values())


def test_patients_have_different_numbers_of_images(tmp_path: Path) -> None:
    tree = write_synthetic_breakhis(
        tmp_path,
        seed=2,
        benign_patients=6,
        malignant_patients=6,
        images_per_magnification=4,
        magnifications=(40, 400),
        image_size=(46, 70),
    )
    records = [parse_image_path(p) for p in tree.rglob("*.png")]
    per_patient = Counter((r.patient, r.magnification) for r in records)
    per_class = Counter((r.label, r.magnification) for r in records)
    assert len(per_patient) == 12 * 2 and min(per_patient.values()) >= 1  # everyone, at every mag
    assert max(per_patient.values()) >= 3 * min(per_patient.values())
    assert set(per_class.values()) == {6 * 4}  # the class totals are exact
    for record in records:  # numbered 1..n without gaps
        assert int(record.filename[-7:-4]) <= per_patient[record.patient, record.magnification]


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
            atypical_fraction=0.3,
        )
    )


def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path: Path) -> None:
    first = _small_tree(tmp_path / "a", seed=3)
    second = _small_tree(tmp_path / "b", seed=3)
    other = _small_tree(tmp_path / "c", seed=4)
    assert len(first) == 16 and first == second
    assert set(other.values()).isdisjoint(first.values())


def test_colour_alone_does_not_tell_the_classes_apart(colour_cohort: dict[str, np.ndarray]) -> None:
    """A colour histogram and per-channel mean/std with a logistic regression, patient-grouped CV:
    near chance (0.42-0.47 here; the generator before, whose classes differed in colour, 0.77-0.85,
    and malignant patients' hematoxylin 20% stronger fails too)."""
    for c in (0.01, 0.1, 1.0):
        auc = _grouped_cv_auc(colour_cohort["colour"], colour_cohort["malignant"], colour_cohort["group"], c)
        assert auc <= 0.65, (c, auc)


def test_colour_alone_does_not_tell_the_subtypes_apart(colour_cohort: dict[str, np.ndarray]) -> None:
    """The eight subtypes differ in arrangement (glands, clefts, chains, mucin, fronds), not in
    colour: a multinomial logistic regression on the colour features, patient-grouped CV, stays
    near the chance balanced accuracy of 1/8 (0.22-0.23 here for C 0.01-1: the arrangements leave
    a small trace in the colour statistics, far from what the morphology carries)."""
    features, subtypes, groups = colour_cohort["colour"], colour_cohort["subtype"], colour_cohort["group"]
    predicted = np.empty(len(subtypes), dtype=object)
    for train, test in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(
        features, subtypes, groups
    ):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000)
        )
        predicted[test] = model.fit(features[train], subtypes[train]).predict(features[test])
    assert len(set(subtypes)) == 8
    assert balanced_accuracy_score(subtypes, predicted.astype(str)) <= 0.25


def test_a_class_morphology_leaves_the_colour_statistics_alone(tmp_path: Path) -> None:
    """Paired: every field drawn twice in its patient's stain, once with each class's morphology
    (atypical share 0 and ~1). Per-channel mean and std do not move with the morphology (paired
    t-statistics near 0; malignant nuclei only 10% darker give |t| of about 10 here)."""
    moments = {}
    for share, name in ((0.0, "typical"), (0.9999, "swapped")):
        tree = write_synthetic_breakhis(
            tmp_path / name,
            seed=0,
            benign_patients=10,
            malignant_patients=10,
            images_per_magnification=1,
            image_size=(116, 176),
            atypical_fraction=share,
        )
        moments[name] = {p.name: _colour_features(_read(p))[-6:] for p in tree.rglob("*.png")}
    sign = {name: 1 if name.startswith("SOB_M") else -1 for name in moments["typical"]}
    differences = np.array(  # malignant morphology minus benign morphology, same stain
        [(typical - moments["swapped"][name]) * sign[name] for name, typical in moments["typical"].items()]
    )
    t = differences.mean(axis=0) / (differences.std(axis=0, ddof=1) / np.sqrt(len(differences)))
    assert len(differences) == 80 and np.abs(t).max() < 4, t.round(1)


def test_nucleus_size_tells_the_classes_apart(dataset: Path) -> None:
    """The class signal is there, in the morphology: a one-number nucleus-size feature, no training,
    separates the classes at every magnification (typical fields; atypical ones are tested below)."""
    records = [parse_image_path(path) for path in sorted(dataset.rglob("*.png"))]
    malignant = np.array([r.target for r in records])
    magnification = np.array([r.magnification for r in records])
    feature = np.array([_large_nucleus_share(_read(Path(r.source)), r.magnification) for r in records])
    assert roc_auc_score(malignant, feature) >= 0.9
    for mag in MAGS:
        assert roc_auc_score(malignant[magnification == mag], feature[magnification == mag]) >= 0.8, mag


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
    def large_nuclei_by_class(fraction: float, root: Path) -> dict[str, float]:
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
            values[path.parts[-6]].append(_large_nucleus_share(_read(path), 100))
        return {label: float(np.mean(v)) for label, v in values.items()}

    typical = large_nuclei_by_class(0.0, tmp_path / "typical")
    swapped = large_nuclei_by_class(0.999, tmp_path / "swapped")  # (nearly) every field atypical
    assert typical["malignant"] > typical["benign"] + 0.3
    assert swapped["benign"] > swapped["malignant"] + 0.3
