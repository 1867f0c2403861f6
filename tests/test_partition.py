"""Splitting by patient: no group in two splits (in every strategy but `image`), stratified by
class within one image, subtypes as far as the groups allow, k folds that partition the patients,
the official folds repaired, all seeded and exact."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from breakhis.data.partition import (
    SPLITS,
    kfold_assignment,
    make_splits,
    split_by_image,
    split_by_patient,
    split_kfold,
    split_official,
)
from breakhis.data.patient_groups import GROUP_COLUMNS, group_keys
from breakhis.data.split_report import LeakError, check_no_leak, describe, group_table, leak_summary
from breakhis.pipeline.params import SplitParams
from tests.conftest import crafted_manifest


def split(manifest: pd.DataFrame, seed: int = 0, group_by: str = "root") -> dict[str, pd.DataFrame]:
    return split_by_patient(manifest, val_size=0.15, test_size=0.2, group_by=group_by, seed=seed)


def with_subtypes(manifest: pd.DataFrame) -> pd.DataFrame:
    """Two subtypes per class, alternating over patient groups."""
    names = {"benign": ("A", "F"), "malignant": ("DC", "LC")}
    codes = manifest.groupby("patient_group").ngroup()
    return manifest.assign(
        subtype=[names[label][c % 2] for label, c in zip(manifest["label"], codes, strict=True)]
    )


def with_official_folds(manifest: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """fold_1..fold_5 columns as Folds.csv has them: 30% of each class's patient *folders* in test."""
    rng = np.random.default_rng(seed)
    columns = {}
    for k in range(1, 6):
        test = set()
        for _, rows in manifest.groupby("label"):
            folders = sorted(rows["patient"].unique())
            test |= set(rng.choice(folders, size=max(1, round(0.3 * len(folders))), replace=False))
        columns[f"fold_{k}"] = ["test" if p in test else "train" for p in manifest["patient"]]
    return manifest.assign(**columns)


def overlaps(splits: dict[str, pd.DataFrame], column: str) -> set[str]:
    seen = [set(frame[column]) for frame in splits.values()]
    return (seen[0] & seen[1]) | (seen[0] & seen[2]) | (seen[1] & seen[2])


def all_splits(manifest: pd.DataFrame, group_by: str) -> list[dict[str, pd.DataFrame]]:
    """One split of every non-leaky strategy, every fold of kfold and official."""
    results = [split(manifest, group_by=group_by)]
    for fold in range(3):
        results.append(split_kfold(manifest, folds=3, fold=fold, val_size=0.15, group_by=group_by, seed=fold))
    official = with_official_folds(manifest)
    for fold in range(5):
        results.append(split_official(official, fold=fold, val_size=0.15, group_by=group_by, seed=0)[0])
    return results


@pytest.mark.parametrize("group_by", ["root", "folder"])
def test_groups_never_straddle_splits_in_any_non_leaky_strategy(group_by: str) -> None:
    manifest = crafted_manifest(benign_patients=24, malignant_patients=40)
    column = GROUP_COLUMNS[group_by]
    for splits in all_splits(manifest, group_by):
        assert not overlaps(splits, column)
        assert not overlaps(splits, "pixel_hash")
        check_no_leak(splits, column)
        for frame in splits.values():
            assert set(frame["label"]) == {"benign", "malignant"}


def test_patient_and_kfold_splits_keep_every_image() -> None:
    manifest = crafted_manifest()
    for splits in (
        split(manifest),
        split_kfold(manifest, folds=3, fold=1, val_size=0.15, group_by="root", seed=0),
    ):
        assert sorted(pd.concat(splits.values()).index) == list(manifest.index)
        assert all(frame.index.is_monotonic_increasing for frame in splits.values())  # manifest order


def within_one_image(
    splits: dict[str, pd.DataFrame], fractions: dict[str, float], total: pd.DataFrame
) -> bool:
    counts = total["target"].value_counts()
    return all(
        abs(int((frame["target"] == cls).sum()) - fractions[name] * n) < 1
        for name, frame in splits.items()
        for cls, n in counts.items()
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratification_holds_within_one_image_per_class(seed: int) -> None:
    manifest = crafted_manifest(benign_patients=23, malignant_patients=51, images=1)  # one image per folder
    fractions = {"train": 0.65, "val": 0.15, "test": 0.2}
    patient = split_by_patient(manifest, val_size=0.15, test_size=0.2, group_by="folder", seed=seed)
    assert within_one_image(patient, fractions, manifest)
    image = split_by_image(crafted_manifest(images=5), val_size=0.15, test_size=0.2, seed=seed)
    assert within_one_image(image, fractions, crafted_manifest(images=5))
    folds = kfold_assignment(manifest, folds=5, group_by="folder", seed=seed)
    by_fold = {str(k): manifest[folds == k] for k in range(5)}
    assert within_one_image(by_fold, dict.fromkeys(by_fold, 0.2), manifest)


def test_subtypes_are_stratified_as_far_as_groups_allow() -> None:
    manifest = with_subtypes(crafted_manifest(benign_patients=40, malignant_patients=40, images=2))
    group_images = 4  # two patients of two images share a root
    for seed in range(3):
        splits = split(manifest, seed=seed)
        for name, fraction in (("train", 0.65), ("val", 0.15), ("test", 0.2)):
            counts = splits[name]["subtype"].value_counts()
            for subtype, total in manifest["subtype"].value_counts().items():
                assert abs(counts.get(subtype, 0) - fraction * total) <= group_images


def test_same_seed_same_split_and_another_seed_differs() -> None:
    manifest = crafted_manifest()
    first, again, other = split(manifest, 1), split(manifest, 1), split(manifest, 2)
    assert all(first[name].equals(again[name]) for name in first)
    assert any(set(first[name]["patient"]) != set(other[name]["patient"]) for name in first)


def test_the_split_does_not_depend_on_row_order() -> None:
    manifest = crafted_manifest()
    shuffled = manifest.sample(frac=1.0, random_state=3)
    first, second = split(manifest), split(shuffled)
    assert all(set(first[name]["filename"]) == set(second[name]["filename"]) for name in SPLITS)


def test_kfold_folds_partition_the_patients() -> None:
    manifest = crafted_manifest(benign_patients=20, malignant_patients=30)
    folds = 5
    tests = []
    for fold in range(folds):
        splits = split_kfold(manifest, folds=folds, fold=fold, val_size=0.15, group_by="root", seed=7)
        assert sum(len(frame) for frame in splits.values()) == len(manifest)
        assert not overlaps(splits, "patient_group")
        tests.append(set(splits["test"]["patient_group"]))
    assert set().union(*tests) == set(manifest["patient_group"])
    assert sum(len(groups) for groups in tests) == manifest["patient_group"].nunique()  # disjoint
    assignment = kfold_assignment(manifest, folds=folds, group_by="root", seed=7)
    assert manifest.groupby("patient_group").apply(lambda g: assignment[g.index].nunique()).eq(1).all()


def test_kfold_refuses_a_fold_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"split.fold=5 is not one of the 5 folds"):
        split_kfold(crafted_manifest(), folds=5, fold=5, val_size=0.15, group_by="root", seed=0)


def leaky_official() -> pd.DataFrame:
    """Folds as published, with the two BreakHis leaks built in (fold_1):
    - root 14-m0: folder ...m0AB in train, ...m0CD in test (a group on both sides under `root`);
    - a DC image in train whose pixel-identical twin sits in an LC folder in test."""
    manifest = with_official_folds(crafted_manifest(benign_patients=12, malignant_patients=20))
    side = {p: "test" if i % 3 == 0 else "train" for i, p in enumerate(sorted(manifest["patient"].unique()))}
    side.update({"SOB_M_X_14-m0AB": "train", "SOB_M_X_14-m0CD": "test"})
    manifest["fold_1"] = manifest["patient"].map(side)
    twin_of = manifest[manifest["fold_1"] == "train"].iloc[-1]
    lc_folder = manifest.loc[manifest["fold_1"] == "test", "patient"].iloc[-1]
    twin = (
        manifest[manifest["patient"] == lc_folder]
        .iloc[[0]]
        .assign(filename="SOB_M_LC-14-13412-100-026.png", pixel_hash=twin_of["pixel_hash"])
    )
    return pd.concat([manifest, twin], ignore_index=True)


def test_official_fold_keeps_the_published_test_side_and_repairs_the_leaks() -> None:
    manifest = leaky_official()
    splits, report = split_official(manifest, fold=0, val_size=0.15, group_by="root", seed=0)
    published_test = manifest[manifest["fold_1"] == "test"]
    assert splits["test"].index.equals(published_test.index)  # test exactly as published
    check_no_leak(splits, "patient_group")
    repaired = {repair["group"] for repair in report["repairs"]}
    twin_group = manifest.loc[manifest["pixel_hash"].duplicated(keep=False), "patient_group"]
    assert "14-m0" in "+".join(repaired)  # the shared root
    assert all(any(group in r.split("+") for r in repaired) for group in twin_group)  # the pixel twin
    dropped = manifest[(manifest["fold_1"] == "train")].index.difference(
        splits["train"].index.union(splits["val"].index)
    )
    assert report["train_images_dropped"] == len(dropped) > 0
    assert report["published_images"] == {
        "train": int((manifest["fold_1"] == "train").sum()),
        "test": len(published_test),
    }


DC_FOLDER, LC_FOLDER = "SOB_M_X_14-m1AB", "SOB_M_X_14-m4CD"


def twin_dropped_by_ingest() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A manifest whose official fold 1 puts the DC folder in train and the LC folder in test, and
    the duplicates.csv that links them: ingest kept the DC copy of an image and dropped the LC one."""
    manifest = with_official_folds(crafted_manifest(benign_patients=12, malignant_patients=20))
    manifest["fold_1"] = np.where(manifest["patient"] == LC_FOLDER, "test", manifest["fold_1"])
    manifest["fold_1"] = np.where(manifest["patient"] == DC_FOLDER, "train", manifest["fold_1"])
    kept = manifest[manifest["patient"] == DC_FOLDER].iloc[0]
    duplicates = pd.DataFrame(
        {"filename": ["SOB_M_LC-x.png"], "patient": [LC_FOLDER], "duplicate_of": [kept["filename"]]}
    )
    return manifest, duplicates


def test_official_twin_dropped_by_ingest_is_linked_through_duplicates_csv() -> None:
    """Ingest keeps the DC copy and drops the LC one; duplicates.csv still links the two folders."""
    manifest, duplicates = twin_dropped_by_ingest()
    dc_folder, lc_folder = DC_FOLDER, LC_FOLDER
    splits, report = split_official(
        manifest, fold=0, val_size=0.15, group_by="folder", seed=0, duplicates=duplicates
    )
    assert dc_folder not in set(splits["train"]["patient"]) | set(splits["val"]["patient"])
    assert lc_folder in set(splits["test"]["patient"])
    assert f"{dc_folder}+{lc_folder}" in [repair["group"] for repair in report["repairs"]]
    check_no_leak(splits, "patient", duplicates)
    without_links = split_official(manifest, fold=0, val_size=0.15, group_by="folder", seed=0)[0]
    with pytest.raises(LeakError, match="linked group"):
        check_no_leak(without_links, "patient", duplicates)


def test_official_without_fold_columns_names_the_strategy_and_the_column() -> None:
    with pytest.raises(ValueError, match=r"split.strategy 'official' needs the manifest column 'fold_3'"):
        split_official(crafted_manifest(), fold=2, val_size=0.15, group_by="root", seed=0)


def test_official_refuses_images_without_a_side() -> None:
    manifest = with_official_folds(crafted_manifest())
    manifest.loc[3, "fold_1"] = np.nan
    manifest.loc[4, "fold_1"] = "validation"
    with pytest.raises(ValueError, match=r"2 image\(s\) have no train/test value in 'fold_1'"):
        split_official(manifest, fold=0, val_size=0.15, group_by="root", seed=0)


def test_official_accepts_sloppy_case_and_spaces() -> None:
    manifest = with_official_folds(crafted_manifest(benign_patients=20, malignant_patients=30))
    manifest["fold_2"] = manifest["fold_2"].str.upper() + " "
    splits, _ = split_official(manifest, fold=1, val_size=0.15, group_by="root", seed=0)
    assert len(splits["test"]) == (manifest["fold_2"] == "TEST ").sum()


def test_image_strategy_is_flagged_leaky_and_its_leak_is_measured() -> None:
    manifest = crafted_manifest()
    result = make_splits(manifest, SplitParams(strategy="image"), seed=0)
    assert result.leaky and result.info["leaky"] is True
    leak = leak_summary(result.splits, "patient_group")
    assert leak["patient_groups_in_train_and_test"] > 0
    with pytest.raises(LeakError):
        check_no_leak(result.splits, "patient_group")


@pytest.mark.parametrize("strategy", ["patient", "kfold", "official"])
def test_make_splits_reports_the_strategy(strategy: str) -> None:
    manifest = with_official_folds(crafted_manifest(benign_patients=20, malignant_patients=30))
    result = make_splits(manifest, SplitParams(strategy=strategy, folds=3, fold=2), seed=0)
    assert not result.leaky and result.info["strategy"] == strategy
    if strategy != "patient":
        assert result.info["fold"] == 2
    if strategy == "official":
        assert result.info["official_fold"] == 3


def test_pixel_twins_link_their_groups() -> None:
    manifest = crafted_manifest()
    manifest.loc[0, "pixel_hash"] = manifest.loc[len(manifest) - 1, "pixel_hash"]
    keys = group_keys(manifest, "root")
    first, last = manifest.loc[0, "patient_group"], manifest.loc[len(manifest) - 1, "patient_group"]
    assert keys[0] == keys[len(manifest) - 1] == "+".join(sorted([first, last]))
    splits = split(manifest)
    check_no_leak(splits, "patient_group")


def test_leak_check_catches_a_shared_group_and_a_shared_pixel_hash() -> None:
    splits = split(crafted_manifest())
    leaked = {**splits, "test": pd.concat([splits["test"], splits["train"].head(1)])}
    with pytest.raises(LeakError, match="patient_group"):
        check_no_leak(leaked, "patient_group")
    twin = splits["train"].head(1).assign(patient_group="elsewhere", patient="elsewhere")
    with pytest.raises(LeakError, match="pixel_hash"):
        check_no_leak({**splits, "test": pd.concat([splits["test"], twin])}, "patient_group")


def test_too_few_patients_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too few"):
        split(crafted_manifest(benign_patients=1, malignant_patients=2))


def test_sizes_that_leave_nothing_to_train_on_are_refused() -> None:
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        split_by_patient(crafted_manifest(), val_size=0.5, test_size=0.5, group_by="root", seed=0)


def test_describe_counts_images_and_patients() -> None:
    splits = split(crafted_manifest(images=4))
    summary = describe(splits)
    for name, frame in splits.items():
        assert summary[name]["images"] == len(frame)
        assert summary[name]["patients"] == frame["patient"].nunique()
        assert sum(summary[name]["images_by_magnification"].values()) == len(frame)
        assert sum(summary[name]["images_by_class"].values()) == len(frame)


def test_group_table_lists_every_group_once() -> None:
    manifest = crafted_manifest()
    table = group_table(split(manifest), "root")
    assert sorted(table["group"]) == sorted(manifest["patient_group"].unique())
    assert table["images"].sum() == len(manifest)


# ---- task: subtype ------------------------------------------------------------------------------


def eight_subtypes(
    groups_per_subtype: int = 4, *, short: str | None = None, short_groups: int = 2
) -> pd.DataFrame:
    """A manifest of the eight subtypes, `groups_per_subtype` patient groups each (two folders a
    group, 6 images a folder); subtype `short` has `short_groups` groups only."""
    from breakhis.pipeline.task import MALIGNANT_SUBTYPES, SUBTYPE_CLASSES

    rows = []
    for code in SUBTYPE_CLASSES:
        label = "malignant" if code in MALIGNANT_SUBTYPES else "benign"
        for g in range(short_groups if code == short else groups_per_subtype):
            root = f"14-{code}{g}"
            for folder in ("AB", "CD"):
                patient = f"SOB_{label[0].upper()}_{code}-{root}{folder}"
                for i in range(6):
                    rows.append(
                        {
                            "path": f"images/{patient}-{i}.png",
                            "filename": f"{patient}-{i}.png",
                            "label": label,
                            "target": int(label == "malignant"),
                            "subtype": code,
                            "patient": patient,
                            "patient_group": root,
                            "magnification": 100,
                            "pixel_hash": f"{patient}-{i}",
                        }
                    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(6))
def test_subtype_task_puts_every_subtype_in_every_split(seed: int) -> None:
    manifest = eight_subtypes(3)  # three groups a subtype: exactly one per split, or it cannot work
    splits = split_by_patient(
        manifest, val_size=0.15, test_size=0.15, group_by="root", seed=seed, task="subtype"
    )
    for name, frame in splits.items():
        assert set(frame["subtype"]) == set(manifest["subtype"]), name
    assert overlaps(splits, "patient_group") == set()
    for fold in range(3):
        folds = split_kfold(
            manifest, folds=3, fold=fold, val_size=0.15, group_by="root", seed=seed, task="subtype"
        )
        assert all(set(frame["subtype"]) == set(manifest["subtype"]) for frame in folds.values())


def test_binary_task_does_not_cover_subtypes() -> None:
    """The coverage is the subtype task's: the binary split of the same manifest leaves some split
    without a subtype for some seed (so the test above tests the repair, not luck)."""
    manifest = eight_subtypes(3)
    assert any(
        any(
            set(frame["subtype"]) != set(manifest["subtype"])
            for frame in split_by_patient(
                manifest, val_size=0.15, test_size=0.15, group_by="root", seed=s
            ).values()
        )
        for s in range(6)
    )


def test_subtype_task_refuses_a_subtype_with_fewer_groups_than_folds() -> None:
    manifest = eight_subtypes(5, short="PT", short_groups=3)
    with pytest.raises(
        ValueError, match=r"subtype PT \(phyllodes_tumor\) has 3 patient group\(s\) .*fewer than the 5 folds"
    ):
        kfold_assignment(manifest, folds=5, group_by="root", seed=0, task="subtype")
    with pytest.raises(ValueError, match="PT .* fewer than the 5 folds"):
        make_splits(manifest, SplitParams(strategy="kfold", folds=5, fold=0), seed=0, task="subtype")
    assert kfold_assignment(manifest, folds=3, group_by="root", seed=0, task="subtype").nunique() == 3
    assert kfold_assignment(manifest, folds=5, group_by="root", seed=0).nunique() == 5  # binary: allowed


def test_subtype_task_refuses_a_split_without_a_subtype_train_has() -> None:
    manifest = eight_subtypes(4, short="TA", short_groups=2)  # two TA groups cannot fill three splits
    with pytest.raises(ValueError) as error:
        split_by_patient(manifest, val_size=0.15, test_size=0.15, group_by="root", seed=0, task="subtype")
    message = str(error.value)
    assert "has no TA (tubular_adenoma) image, which train has" in message
    assert re.search(r"TA has 4 patient\(s\) \(train \d, val \d, test \d; 24 images\)", message), message
    # the binary task does not need it
    split_by_patient(manifest, val_size=0.15, test_size=0.15, group_by="root", seed=0)


def test_split_summary_counts_patients_by_subtype() -> None:
    manifest = eight_subtypes(3)
    splits = split_by_patient(
        manifest, val_size=0.15, test_size=0.15, group_by="root", seed=0, task="subtype"
    )
    summary = describe(splits)
    for name, frame in splits.items():
        assert summary[name]["patients_by_subtype"] == frame.groupby("subtype")["patient"].nunique().to_dict()
    assert summary["test"]["patients_by_subtype"] == dict.fromkeys(set(manifest["subtype"]), 2)


def test_with_train_validation_none_only_test_must_hold_every_subtype() -> None:
    """Two PT groups and two folds: the rest of a fold cannot give val a PT group too. When the
    models train on val (`train.validation: none`), that is no problem; else it is an error."""
    manifest = eight_subtypes(4, short="PT", short_groups=2)
    for fold in range(2):
        with pytest.raises(ValueError, match="the val split has no PT"):
            split_kfold(manifest, folds=2, fold=fold, val_size=0.15, group_by="root", seed=0, task="subtype")
        splits = split_kfold(
            manifest,
            folds=2,
            fold=fold,
            val_size=0.15,
            group_by="root",
            seed=0,
            task="subtype",
            train_on_val=True,
        )
        assert set(splits["test"]["subtype"]) == set(manifest["subtype"])
        assert set(pd.concat([splits["train"], splits["val"]])["subtype"]) == set(manifest["subtype"])


@pytest.mark.parametrize("strategy", ["patient", "kfold", "official"])
def test_make_splits_keeps_folders_linked_by_duplicates_csv_together(strategy: str) -> None:
    """make_splits hands ingest's duplicates.csv to every grouped strategy: a folder whose image ingest
    dropped as another folder's pixel twin goes wherever that folder goes, whatever the seed."""
    manifest, duplicates = twin_dropped_by_ingest()
    params = SplitParams(strategy=strategy, group_by="folder", folds=3, fold=0)
    for seed in range(8):
        result = make_splits(manifest, params, seed=seed, duplicates=duplicates)
        check_no_leak(result.splits, "patient", duplicates)
