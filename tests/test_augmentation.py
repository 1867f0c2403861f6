"""Augmentation: the train split only, balanced to the target ratio, transforms that keep the
image's shape and meaning, new images linked to their sources, byte-for-byte deterministic."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from breakhis.data.augmentation import Transforms, augment_image, plan_augmentation
from breakhis.data.images import pixel_hash, read_rgb, write_rgb
from breakhis.pipeline.params import AugmentParams
from stages import augment as augment_stage
from tests.conftest import PROJECT_ROOT, crafted_manifest


def train_rows(benign: int = 3, malignant: int = 7, images: int = 2) -> pd.DataFrame:
    return crafted_manifest(benign_patients=benign, malignant_patients=malignant, images=images)


@pytest.mark.parametrize(
    ("target_ratio", "extra"), [(1.0, 0.0), (0.5, 0.0), (0.8, 0.0), (1.0, 1.0), (0.3, 0.5)]
)
def test_plan_balances_to_the_target_ratio(target_ratio: float, extra: float) -> None:
    train = train_rows()  # 6 benign, 14 malignant images
    plan = plan_augmentation(train, target_ratio=target_ratio, extra_per_image=extra, seed=0)
    after = pd.concat([train, plan])["target"].value_counts()
    minority, majority = after.min(), after.max()
    assert minority / majority >= target_ratio - 1e-9
    extra_only = {cls: n + round(extra * n) for cls, n in train["target"].value_counts().items()}
    assert minority == max(
        min(extra_only.values()), math.ceil(target_ratio * majority)
    )  # no more than needed
    assert set(plan["path"]) <= set(train["path"])


def test_plan_uses_every_source_before_any_twice() -> None:
    train = train_rows()
    plan = plan_augmentation(train, target_ratio=1.0, seed=1)  # 8 new benign from 6 sources
    uses = plan["path"].value_counts()
    assert len(plan) == 8 and set(plan["target"]) == {0}
    assert uses.max() - uses.min() <= 1 and len(uses) == 6


def test_plan_refuses_a_single_class_train_split() -> None:
    with pytest.raises(ValueError, match="only one class"):
        plan_augmentation(train_rows(benign=0), target_ratio=1.0, seed=0)


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(im, k) for im in (image, image[:, ::-1]) for k in range(4)]


@pytest.mark.parametrize("shape", [(32, 32, 3), (24, 40, 3)])
def test_geometric_transforms_are_symmetries_that_keep_the_shape(shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    transforms = Transforms(flip=True, rotate90=True)
    seen = set()
    for i in range(64):
        out, description = augment_image(image, transforms, np.random.default_rng(i))
        assert out.shape == image.shape
        assert any(np.array_equal(out, candidate) for candidate in dihedral(image))
        seen.add(description)
    assert len(seen) == (8 if shape[0] == shape[1] else 4)  # every allowed symmetry shows up


def test_zoom_keeps_the_shape_and_changes_no_colour() -> None:
    image = np.full((40, 60, 3), (200, 120, 180), dtype=np.uint8)
    transforms = Transforms(flip=False, rotate90=False, zoom=0.2)
    out, description = augment_image(image, transforms, np.random.default_rng(5))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert description.startswith("zoom1.")
    assert np.array_equal(np.unique(out.reshape(-1, 3), axis=0), [[200, 120, 180]])


def test_offline_colour_jitter_is_refused_with_where_it_moved() -> None:
    """Offline colour changes reached only the balancing copies (mostly one class): a class cue."""
    with pytest.raises(ValueError, match=r"augment.hed_jitter moved to train.hed_jitter"):
        AugmentParams.model_validate({"hed_jitter": 0.05})


def test_the_same_seed_gives_the_same_image() -> None:
    image = np.random.default_rng(2).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    transforms = Transforms(zoom=0.1)
    first = augment_image(image, transforms, np.random.default_rng(9))
    again = augment_image(image, transforms, np.random.default_rng(9))
    assert pixel_hash(first[0]) == pixel_hash(again[0]) and first[1] == again[1]


def augment_project(root: Path, workers: int) -> Path:
    """A project holding only the train split and its images: no val or test file exists at all."""
    train = train_rows()
    images = root / "data/ingested/images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for path in train["path"]:
        write_rgb(root / path, rng.integers(0, 256, size=(24, 36, 3), dtype=np.uint8))
    (root / "data/split").mkdir(parents=True)
    train.to_csv(root / "data/split/train.csv", index=False)
    params = {"seed": 5, "augment": {"zoom": 0.1, "workers": workers}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def run_augment(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(root)
    augment_stage.main()
    files = sorted(p for p in (root / "data/augmented").rglob("*") if p.is_file())
    files.append(root / "plots/augment_preview.png")
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_augment_reads_train_only_balances_and_links_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = augment_project(tmp_path, workers=1)
    run_augment(root, monkeypatch)
    assert not (root / "data/split/val.csv").exists() and not (root / "data/split/test.csv").exists()
    rows = pd.read_csv(root / "data/augmented/train.csv", keep_default_na=False)
    counts = rows["label"].value_counts()
    assert counts["benign"] == counts["malignant"] == 14
    new = rows[rows["source_path"] != ""]
    sources = pd.read_csv(root / "data/split/train.csv").set_index("path").loc[new["source_path"]]
    for column in ("patient", "patient_group", "label", "target", "subtype", "magnification"):
        assert (new[column].to_numpy() == sources[column].to_numpy()).all(), column
    assert new["augmentation"].str.len().gt(0).all()
    for row in new.itertuples():
        image = read_rgb(row.path)
        assert image.shape == read_rgb(row.source_path).shape
        assert pixel_hash(image) == row.pixel_hash
    assert (root / "plots/augment_preview.png").stat().st_size > 5000


def test_augment_is_byte_for_byte_deterministic_whatever_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = run_augment(augment_project(tmp_path / "a", workers=1), monkeypatch)
    parallel = run_augment(augment_project(tmp_path / "b", workers=2), monkeypatch)
    assert serial == parallel
    assert len(serial) == 1 + 8 + 1  # train.csv, 8 new images, the preview


def test_the_augment_stage_depends_on_no_val_or_test_data() -> None:
    stage = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]["augment"]
    assert "data/split/train.csv" in stage["deps"]
    assert not [dep for dep in stage["deps"] if "val" in dep or "test" in dep or dep == "data/split"]
