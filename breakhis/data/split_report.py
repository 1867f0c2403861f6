"""What a split did, checked and summarised: no patient group, linked group or pixel-identical
image in two splits (`check_no_leak`), what a leaky split shares between train and test, where
every group went, and images and patients per split."""

from __future__ import annotations

import pandas as pd

from breakhis.data.patient_groups import group_keys


class LeakError(AssertionError):
    """A patient group or a pixel-identical image appears in two splits."""


def check_no_leak(
    splits: dict[str, pd.DataFrame], groups: str, duplicates: pd.DataFrame | None = None
) -> None:
    """Fail loudly if any patient group, linked group or pixel hash is found in two splits."""
    tagged = pd.concat([frame.assign(_split=name) for name, frame in splits.items()], ignore_index=True)
    group_by = "folder" if groups == "patient" else "root"
    tagged["linked group"] = group_keys(tagged, group_by, duplicates)
    for column in (groups, "pixel_hash", "linked group"):
        seen = tagged.groupby(column, sort=True)["_split"].unique()
        for value, names in seen.items():
            if len(names) > 1:
                raise LeakError(f"{column} '{value}' is in both the {names[0]} and the {names[1]} split")


def leak_summary(splits: dict[str, pd.DataFrame], groups: str) -> dict[str, int]:
    """How much a (leaky) split shares between train and test."""
    train, test = splits["train"], splits["test"]
    shared = set(train[groups]) & set(test[groups])
    return {
        "patient_groups_in_train_and_test": len(shared),
        "test_images_of_groups_in_train": int(test[groups].isin(shared).sum()),
        "pixel_hashes_in_train_and_test": len(set(train["pixel_hash"]) & set(test["pixel_hash"])),
    }


def group_table(
    splits: dict[str, pd.DataFrame], group_by: str, duplicates: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per (group, split): where every patient group went, with its images and patients."""
    tagged = pd.concat([frame.assign(split=name) for name, frame in splits.items()], ignore_index=True)
    tagged["group"] = group_keys(tagged, group_by, duplicates)
    table = tagged.groupby(["group", "split"], sort=True).agg(
        images=("filename", "size"),
        label=("label", lambda s: "/".join(sorted(set(s)))),
        subtypes=("subtype", lambda s: "/".join(sorted(set(s)))),
        patients=("patient", lambda s: " ".join(sorted(set(s)))),
    )
    return table.reset_index()


def _counts(series: pd.Series, fmt: str = "{}") -> dict[str, int]:
    return {fmt.format(k): int(v) for k, v in series.value_counts().sort_index().items()}


def describe(splits: dict[str, pd.DataFrame]) -> dict[str, object]:
    """Images and patients per split, by class, subtype and magnification."""
    total = sum(len(frame) for frame in splits.values())
    summary: dict[str, object] = {}
    for name, frame in splits.items():
        summary[name] = {
            "images": len(frame),
            "image_fraction": round(len(frame) / total, 4) if total else 0.0,
            "malignant_fraction": round(float(frame["target"].mean()), 4) if len(frame) else 0.0,
            "patients": int(frame["patient"].nunique()),
            "patient_groups": int(frame["patient_group"].nunique()),
            "images_by_class": _counts(frame["label"]),
            "patients_by_class": {k: int(v) for k, v in frame.groupby("label")["patient"].nunique().items()},
            "images_by_magnification": _counts(frame["magnification"], "{}X"),
            "images_by_subtype": _counts(frame["subtype"]),
            "patients_by_subtype": {
                k: int(v) for k, v in frame.groupby("subtype")["patient"].nunique().items()
            },
        }
    return summary
