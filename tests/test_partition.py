"""The patient split: no group in two splits, both classes everywhere, seeded and exact."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.partition import LeakError, check_no_leak, describe, split_by_patient
from tests.conftest import crafted_manifest


def split(manifest: pd.DataFrame, seed: int = 0, group_by: str = "root") -> dict[str, pd.DataFrame]:
    return split_by_patient(manifest, val_size=0.15, test_size=0.2, group_by=group_by, seed=seed)


@pytest.mark.parametrize("group_by", ["root", "folder"])
def test_groups_never_straddle_splits(group_by: str) -> None:
    manifest = crafted_manifest()
    splits = split(manifest, group_by=group_by)
    column = {"root": "patient_group", "folder": "patient"}[group_by]
    groups = [set(frame[column]) for frame in splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(len(frame) for frame in splits.values()) == len(manifest)
    check_no_leak(splits, column)


def test_every_split_has_both_classes_and_sizes_follow_params() -> None:
    splits = split(crafted_manifest(benign_patients=10, malignant_patients=20))
    for frame in splits.values():
        assert set(frame["label"]) == {"benign", "malignant"}
    total = sum(len(frame) for frame in splits.values())
    assert 0.1 < len(splits["test"]) / total < 0.3
    assert 0.05 < len(splits["val"]) / total < 0.3


def test_same_seed_same_split_and_another_seed_differs() -> None:
    manifest = crafted_manifest()
    first, again, other = split(manifest, 1), split(manifest, 1), split(manifest, 2)
    assert all(first[name].equals(again[name]) for name in first)
    assert any(set(first[name]["patient"]) != set(other[name]["patient"]) for name in first)


def test_leak_check_catches_a_shared_group_and_a_shared_pixel_hash() -> None:
    splits = split(crafted_manifest())
    leaked = {**splits, "test": pd.concat([splits["test"], splits["train"].head(1)])}
    with pytest.raises(LeakError, match="patient_group"):
        check_no_leak(leaked, "patient_group")
    twin = splits["train"].head(1).assign(patient_group="elsewhere")
    with pytest.raises(LeakError, match="pixel_hash"):
        check_no_leak({**splits, "test": pd.concat([splits["test"], twin])}, "patient_group")


def test_too_few_patients_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too few"):
        split(crafted_manifest(benign_patients=1, malignant_patients=2))


def test_describe_counts_images_and_patients() -> None:
    splits = split(crafted_manifest(images=4))
    summary = describe(splits)
    for name, frame in splits.items():
        assert summary[name]["images"] == len(frame)
        assert summary[name]["patients"] == frame["patient"].nunique()
        assert sum(summary[name]["images_by_magnification"].values()) == len(frame)
