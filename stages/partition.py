"""Splitting the manifest by patient: no patient group ever sits in two splits.

Splits come from scikit-learn's StratifiedGroupKFold: whole patient groups are assigned to
folds, and folds are balanced by class as far as the groups allow.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

SPLITS = ("train", "val", "test")
GROUP_COLUMNS = {"root": "patient_group", "folder": "patient"}


class LeakError(AssertionError):
    """A patient group or a pixel-identical image appears in two splits."""


def _hold_out(
    frame: pd.DataFrame, fraction: float, groups: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off about `fraction` of the rows as whole groups, stratified by target."""
    n_splits = max(2, round(1 / fraction))
    n_groups = frame[groups].nunique()
    if n_groups < n_splits:
        raise ValueError(
            f"{n_groups} patient groups are too few to hold out {fraction:.0%} of them by patient"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    keep, held = next(folds.split(frame, frame["target"], frame[groups]))
    return frame.iloc[keep], frame.iloc[held]


def split_by_patient(
    manifest: pd.DataFrame, *, val_size: float, test_size: float, group_by: str, seed: int
) -> dict[str, pd.DataFrame]:
    """train/val/test by patient group, stratified by class; each split in manifest order."""
    groups = GROUP_COLUMNS[group_by]
    rest, test = _hold_out(manifest, test_size, groups, seed)
    train, val = _hold_out(rest, val_size / (1 - test_size), groups, seed + 1)
    splits = {"train": train, "val": val, "test": test}
    for name, frame in splits.items():
        if frame["target"].nunique() < 2:
            raise ValueError(f"the {name} split has only one class; more patients per class are needed")
    return {name: frame.sort_index() for name, frame in splits.items()}


def check_no_leak(splits: dict[str, pd.DataFrame], groups: str) -> None:
    """Fail loudly if any patient group or pixel hash is found in two splits."""
    for column in (groups, "pixel_hash"):
        seen: dict[str, str] = {}
        for name, frame in splits.items():
            for value in frame[column].unique():
                if value in seen:
                    raise LeakError(f"{column} '{value}' is in both the {seen[value]} and the {name} split")
                seen[value] = name


def describe(splits: dict[str, pd.DataFrame]) -> dict[str, object]:
    """Images and patients per split, by class and by magnification."""
    summary: dict[str, object] = {}
    for name, frame in splits.items():
        summary[name] = {
            "images": len(frame),
            "patients": int(frame["patient"].nunique()),
            "patient_groups": int(frame["patient_group"].nunique()),
            "images_by_class": {k: int(v) for k, v in frame["label"].value_counts().sort_index().items()},
            "patients_by_class": {k: int(v) for k, v in frame.groupby("label")["patient"].nunique().items()},
            "images_by_magnification": {
                f"{k}X": int(v) for k, v in frame["magnification"].value_counts().sort_index().items()
            },
        }
    return summary
