"""Splitting the manifest into train/val/test without letting a patient sit in two splits.

Strategies (`split.strategy`):
  patient   train/val/test by patient group, sizes from params (the default);
  kfold     `folds` patient-grouped folds; fold `fold` is the test split, val is carved from the rest;
  official  the published Kaggle Folds.csv fold, repaired where a patient group or a pixel-identical
            image sits on both sides; val is carved from train;
  image     a random split by image: leaky on purpose, only to reproduce image-level figures.

A split keeps patient groups whole (breakhis.data.patient_groups: groups linked by pixel-identical
images are one group), except `image`, whose unit is the image; the units are assigned whole,
stratified by class and subtype (breakhis.data.group_assignment). With `task: subtype`, a k-fold
split refuses a subtype with fewer patient groups than folds, and every split refuses a val or test
split without a subtype that train has: each error names the subtype and its patients per split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from breakhis.data.group_assignment import Seed, assign_groups
from breakhis.data.patient_groups import group_keys, linked_groups
from breakhis.pipeline.params import SplitParams
from breakhis.pipeline.stage import listed
from breakhis.pipeline.task import SUBTYPES

SPLITS = ("train", "val", "test")
OFFICIAL_FOLDS = 5  # Folds.csv has folds 1..5; split.fold 0..4 picks one


@dataclass
class SplitResult:
    """The splits (rows of the manifest, in manifest order) and what the strategy did, for metrics."""

    splits: dict[str, pd.DataFrame]
    leaky: bool = False
    info: dict[str, object] = field(default_factory=dict)


def official_fold_column(fold: int) -> str:
    """Manifest column holding Folds.csv fold `fold + 1` (split.fold is 0-based)."""
    return f"fold_{fold + 1}"


def _partition(
    frame: pd.DataFrame,
    keys: pd.Series,
    names: Sequence[str],
    fractions: Sequence[float],
    seed: Seed,
    subtypes: bool = False,
) -> dict[str, pd.DataFrame]:
    parts = assign_groups(frame, keys, fractions, seed, subtypes=subtypes)
    row_part = keys.map(parts).to_numpy()
    return {name: frame[row_part == i] for i, name in enumerate(names)}


def _check_classes(
    splits: dict[str, pd.DataFrame], subtypes: bool = False, train_on_val: bool = False
) -> dict[str, pd.DataFrame]:
    for name, frame in splits.items():
        if frame.empty:
            raise ValueError(f"the {name} split is empty; more patient groups (or a larger share) are needed")
        if frame["target"].nunique() < 2:
            raise ValueError(f"the {name} split has only one class; more patients per class are needed")
    if subtypes:
        _check_subtypes(splits, ("test",) if train_on_val else ("val", "test"))
    return {name: splits[name].sort_index() for name in SPLITS}


def _check_subtypes(splits: dict[str, pd.DataFrame], scored: Sequence[str]) -> None:
    """task: subtype: the `scored` splits (val and test; test alone when the models train on val)
    must hold every subtype train has: a model is scored, and its threshold and temperature chosen,
    on every class it learns."""
    trained = set(splits["train"]["subtype"])
    if "val" not in scored:
        trained |= set(splits["val"]["subtype"])
    for name in scored:
        missing = sorted(set(trained) - set(splits[name]["subtype"]), key=list(SUBTYPES).index)
        if missing:
            code = missing[0]
            patients = {
                split: frame.loc[frame["subtype"] == code, "patient"].nunique()
                for split, frame in splits.items()
            }
            images = sum(int((frame["subtype"] == code).sum()) for frame in splits.values())
            raise ValueError(
                f"task: subtype: the {name} split has no {code} ({SUBTYPES[code][1]}) image, which "
                f"train has: {code} has {sum(patients.values())} patient(s) ("
                + ", ".join(f"{split} {count}" for split, count in patients.items())
                + f"; {images} images). Every split needs every subtype: use more {code} patients, "
                f"a larger split.{name}_size, split.group_by folder, or fewer folds"
                + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
            )


def _need_subtype_groups(frame: pd.DataFrame, keys: pd.Series, folds: int) -> None:
    """task: subtype, k folds: every subtype needs a patient group in every fold."""
    groups = keys.groupby(frame["subtype"]).unique()
    for code in sorted(groups.index, key=list(SUBTYPES).index):
        held = sorted(groups[code])
        if len(held) < folds:
            raise ValueError(
                f"task: subtype: subtype {code} ({SUBTYPES[code][1]}) has {len(held)} patient group(s) "
                f"({listed(held)}), fewer than the "
                f"{folds} folds: every fold needs every subtype. "
                + (
                    f"Use at most {len(held)} folds (split.folds, --folds), split.group_by folder, or data "
                    "with more patients of it"
                    if len(held) > 1
                    else "One group cannot be both trained and tested on: add patients of it, or leave "
                    "its images out of the data"
                )
            )


def _need_groups(keys: pd.Series, parts: int, what: str) -> None:
    if keys.nunique() < parts:
        raise ValueError(f"{keys.nunique()} patient groups are too few to make {parts} {what} by patient")


def _carve_val(
    rest: pd.DataFrame, keys: pd.Series, val_size: float, total: int, seed: Seed, subtypes: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out `val_size` of all `total` images from `rest` as whole groups, stratified."""
    share = val_size * total / len(rest)
    if not 0 < share < 1:
        raise ValueError(
            f"split.val_size={val_size} asks for {share:.0%} of the {len(rest)} non-test images; "
            "nothing would be left to train on"
        )
    carved = _partition(rest, keys[rest.index], ("train", "val"), (1 - share, share), seed, subtypes)
    return carved["train"], carved["val"]


# ---------------------------------------------------------------------------------------------
# strategies


def split_by_patient(
    manifest: pd.DataFrame,
    *,
    val_size: float,
    test_size: float,
    group_by: str,
    seed: int,
    duplicates: pd.DataFrame | None = None,
    task: str = "binary",
    train_on_val: bool = False,
) -> dict[str, pd.DataFrame]:
    """train/val/test by patient group, stratified by class (then subtype); manifest order."""
    _leaves_training(val_size, test_size)
    keys = group_keys(manifest, group_by, duplicates)
    _need_groups(keys, 3, "splits")
    return _three_splits(manifest, keys, (val_size, test_size), seed, task, train_on_val)


def _leaves_training(val_size: float, test_size: float) -> None:
    if val_size + test_size >= 1:
        raise ValueError(
            f"split.val_size + split.test_size = {val_size + test_size} leaves nothing to train on"
        )


def _three_splits(
    manifest: pd.DataFrame,
    keys: pd.Series,
    sizes: tuple[float, float],
    seed: int,
    task: str,
    train_on_val: bool,
) -> dict[str, pd.DataFrame]:
    """train/val/test of the manifest by `keys` (the unit kept together), val and test of `sizes`."""
    subtypes = task == "subtype"
    fractions = (1 - sizes[0] - sizes[1], *sizes)  # as before: the float order decides borderline groups
    return _check_classes(
        _partition(manifest, keys, SPLITS, fractions, seed, subtypes), subtypes, train_on_val
    )


def kfold_assignment(
    manifest: pd.DataFrame,
    *,
    folds: int,
    group_by: str,
    seed: int,
    duplicates: pd.DataFrame | None = None,
    task: str = "binary",
) -> pd.Series:
    """The fold (0..folds-1) of every row: whole groups, folds stratified; fixed by seed alone."""
    return _fold_of_rows(manifest, group_keys(manifest, group_by, duplicates), folds, seed, task == "subtype")


def _fold_of_rows(
    manifest: pd.DataFrame, keys: pd.Series, folds: int, seed: int, subtypes: bool = False
) -> pd.Series:
    _need_groups(keys, folds, "folds")
    if subtypes:
        _need_subtype_groups(manifest, keys, folds)
    parts = assign_groups(manifest, keys, [1 / folds] * folds, seed, subtypes=subtypes)
    return keys.map(parts).rename("fold")


def split_kfold(
    manifest: pd.DataFrame,
    *,
    folds: int,
    fold: int,
    val_size: float,
    group_by: str,
    seed: int,
    duplicates: pd.DataFrame | None = None,
    task: str = "binary",
    train_on_val: bool = False,
) -> dict[str, pd.DataFrame]:
    """Fold `fold` of `folds` patient-grouped folds is test; val is carved from the rest by patient."""
    if not 0 <= fold < folds:
        raise ValueError(f"split.fold={fold} is not one of the {folds} folds (0..{folds - 1})")
    keys = group_keys(manifest, group_by, duplicates)
    subtypes = task == "subtype"
    assignment = _fold_of_rows(manifest, keys, folds, seed, subtypes)
    test, rest = manifest[assignment == fold], manifest[assignment != fold]
    train, val = _carve_val(rest, keys, val_size, len(manifest), [seed, 1, fold], subtypes)
    return _check_classes({"train": train, "val": val, "test": test}, subtypes, train_on_val)


def official_sides(manifest: pd.DataFrame, fold: int) -> pd.Series:
    """`train`/`test` of every row in Folds.csv fold `fold + 1`, from the manifest's fold_<k> column."""
    column = official_fold_column(fold)
    if not 0 <= fold < OFFICIAL_FOLDS:
        raise ValueError(f"split.fold={fold}: split.strategy 'official' has folds 0..{OFFICIAL_FOLDS - 1}")
    if column not in manifest.columns:
        raise ValueError(
            f"split.strategy 'official' needs the manifest column '{column}' (the Kaggle Folds.csv "
            f"assignment of each image to train or test in fold {fold + 1}); data/ingested/manifest.csv "
            "has none. Use data.source 'kaggle' with its Folds.csv, or another split.strategy."
        )
    sides = manifest[column].astype("string").str.strip().str.lower()
    bad = manifest.loc[~sides.isin(["train", "test"]).fillna(False).astype(bool), "filename"]
    if len(bad):
        raise ValueError(
            f"split.strategy 'official': {len(bad)} image(s) have no train/test value in '{column}': "
            f"{listed(list(bad))}"
        )
    return sides.astype(str)


def split_official(
    manifest: pd.DataFrame,
    *,
    fold: int,
    val_size: float,
    group_by: str,
    seed: int,
    duplicates: pd.DataFrame | None = None,
    task: str = "binary",
    train_on_val: bool = False,
) -> tuple[dict[str, pd.DataFrame], dict[str, object]]:
    """The published train/test of Folds.csv fold `fold + 1`, repaired, and val carved from train.

    A group (linked by pixel twins, under `group_by`) with images on both sides keeps its test
    images, so the test side stays exactly as published; its train images are dropped. Returns the
    splits and a report of what was repaired.
    """
    sides = official_sides(manifest, fold)
    keys = group_keys(manifest, group_by, duplicates)
    test_groups = set(keys[sides == "test"])
    leaking = (sides == "train") & keys.isin(test_groups)
    repairs = []
    for key, rows in manifest[leaking].groupby(keys[leaking], sort=True):
        in_test = manifest[(sides == "test") & (keys == key)]
        repairs.append(
            {
                "group": key,
                "train_images_dropped": len(rows),
                "train_patients": sorted(set(rows["patient"])),
                "test_images_kept": len(in_test),
                "test_patients": sorted(set(in_test["patient"])),
            }
        )
    published = {"train": int((sides == "train").sum()), "test": int((sides == "test").sum())}
    test = manifest[sides == "test"]
    rest = manifest[(sides == "train") & ~leaking]
    subtypes = task == "subtype"
    total = len(manifest) - int(leaking.sum())
    train, val = _carve_val(rest, keys, val_size, total, [seed, 1, fold], subtypes)
    report = {
        "official_fold": fold + 1,
        "published_images": published,
        "repaired_groups": len(repairs),
        "train_images_dropped": int(leaking.sum()),
        "repairs": repairs,
    }
    return _check_classes({"train": train, "val": val, "test": test}, subtypes, train_on_val), report


def split_by_image(
    manifest: pd.DataFrame,
    *,
    val_size: float,
    test_size: float,
    seed: int,
    task: str = "binary",
    train_on_val: bool = False,
) -> dict[str, pd.DataFrame]:
    """A random split by image, stratified by class (then subtype). Leaky: patients straddle splits."""
    _leaves_training(val_size, test_size)
    keys = pd.Series(manifest["filename"].to_numpy(), index=manifest.index)
    return _three_splits(manifest, keys, (val_size, test_size), seed, task, train_on_val)


def make_splits(
    manifest: pd.DataFrame,
    params: SplitParams,
    seed: int,
    duplicates: pd.DataFrame | None = None,
    task: str = "binary",
    train_on_val: bool = False,
) -> SplitResult:
    """Run the strategy that `params.strategy` names, for `task` (subtype: every split holds every
    subtype; only test when `train_on_val`, `train.validation: none`, makes val training data)."""
    keys = group_keys(manifest, params.group_by, duplicates)
    info: dict[str, object] = {
        "strategy": params.strategy,
        "group_by": params.group_by,
        "leaky": params.strategy == "image",
        "stratified_by": "subtype, every subtype in every split"
        if task == "subtype"
        else "class, then subtype",
        "patient_groups": int(keys.nunique()),
        "linked_by_pixel_twins": linked_groups(keys),
    }
    # every strategy: the seed, the task and what validation is; the grouped ones also their groups
    common: dict[str, Any] = {"seed": seed, "task": task, "train_on_val": train_on_val}
    grouped = {**common, "group_by": params.group_by, "duplicates": duplicates, "val_size": params.val_size}
    if params.strategy == "patient":
        splits = split_by_patient(manifest, test_size=params.test_size, **grouped)
    elif params.strategy == "kfold":
        splits = split_kfold(manifest, folds=params.folds, fold=params.fold, **grouped)
        info.update(folds=params.folds, fold=params.fold)
    elif params.strategy == "official":
        splits, report = split_official(manifest, fold=params.fold, **grouped)
        info.update(fold=params.fold, **report)
    else:
        splits = split_by_image(manifest, val_size=params.val_size, test_size=params.test_size, **common)
    return SplitResult(splits, leaky=params.strategy == "image", info=info)
