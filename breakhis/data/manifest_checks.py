"""The manifest (or a split's rows) checked as data before it is split: what splitting reads of
ingest's manifest and duplicates, and `check_manifest`, which names every contradiction with its
CSV lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from breakhis.data.dataset import MAGNIFICATIONS
from breakhis.pipeline.stage import SHOWN, listed

# what splitting reads of ingest's manifest and duplicates (ingest writes more)
MANIFEST_REQUIRED = (
    "path",
    "filename",
    "label",
    "target",
    "subtype",
    "patient",
    "patient_group",
    "magnification",
    "pixel_hash",
)
DUPLICATES_REQUIRED = ("filename", "duplicate_of", "pixel_hash")


class ManifestError(ValueError):
    """A manifest (or split) table whose rows contradict each other or leave a key empty."""


KEY_COLUMNS = ("path", "filename", "label", "patient", "patient_group", "subtype", "pixel_hash")
ASCII_COLUMNS = ("filename", "label", "patient", "patient_group", "subtype", "pixel_hash")
TARGETS = {"benign": 0, "malignant": 1}


def csv_lines(index: Sequence[Any] | pd.Index) -> str:
    """CSV line numbers of frame rows (header on line 1), e.g. `lines 2, 3, 9`."""
    numbers = [int(i) + 2 for i in list(index)]
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return f"lines {listed(numbers)}"


def _shown(value: object) -> str:
    text = str(value)
    return text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _cell(value: Any) -> str:
    """A cell as a message quotes it: `empty`, or its value in quotes."""
    return "empty" if pd.isna(value) else f"'{_shown(value)}'"


# Each check below returns its kinds of problem, a list each (every row that has it): check_manifest
# shows the first few of every kind.
def _key_problems(frame: pd.DataFrame) -> list[list[str]]:
    problems: list[list[str]] = []
    for column in KEY_COLUMNS:
        if column not in frame.columns:
            continue
        values = frame[column]
        text = values.astype("string")
        empty = values.isna() | (text.str.strip() == "").fillna(True).astype(bool)
        if empty.any():
            problems.append([f"empty {column} in {csv_lines(frame.index[empty])}"])
        padded = ~empty & (text != text.str.strip()).fillna(False).astype(bool)
        problems.append(
            [
                f"{csv_lines([i])}: {column} '{_shown(values[i])}' has spaces or line breaks around it"
                for i in frame.index[padded]
            ]
        )
        odd = ~empty & ~text.map(lambda v: v.isprintable(), na_action="ignore").fillna(True).astype(bool)
        if column in ASCII_COLUMNS:
            odd |= ~empty & ~text.map(lambda v: v.isascii(), na_action="ignore").fillna(True).astype(bool)
        problems.append(
            [
                f"{csv_lines([i])}: {column} '{_shown(values[i])}' holds a control or non-ASCII character "
                "(a look-alike letter? ingest writes ASCII names)"
                for i in frame.index[odd & ~padded]
            ]
        )
    return problems


def _value_problems(frame: pd.DataFrame) -> list[list[str]]:
    problems: list[list[str]] = []
    if "label" in frame.columns:
        known = frame["label"].isin(list(TARGETS)) | frame["label"].isna()
        problems.append(
            [
                f"{csv_lines([i])}: label '{_shown(frame.at[i, 'label'])}' is not benign or malignant"
                for i in frame.index[~known]
            ]
        )
    if "target" in frame.columns:
        target = pd.to_numeric(frame["target"], errors="coerce")
        bad = ~target.isin([0, 1])
        problems.append(
            [f"{csv_lines([i])}: target {_cell(frame['target'][i])} is not 0 or 1" for i in frame.index[bad]]
        )
        if "label" in frame.columns:
            expected = frame["label"].map(TARGETS)
            clash = ~bad & expected.notna() & (target != expected)
            problems.append(
                [
                    f"{csv_lines([i])}: target {int(target[i])} contradicts label '{frame['label'][i]}' "
                    "(benign is 0, malignant 1)"
                    for i in frame.index[clash]
                ]
            )
    if "magnification" in frame.columns:
        magnification = pd.to_numeric(frame["magnification"], errors="coerce")
        bad = ~magnification.isin(list(MAGNIFICATIONS))
        known_ones = ", ".join(map(str, MAGNIFICATIONS))
        problems.append(
            [
                f"{csv_lines([i])}: magnification {_cell(frame['magnification'][i])} is not one of "
                + known_ones
                for i in frame.index[bad]
            ]
        )
    return problems


def _listed_twice(frame: pd.DataFrame) -> list[list[str]]:
    problems: list[list[str]] = []
    for column in ("path", "filename"):
        if column not in frame.columns:
            continue
        twice = frame[frame[column].duplicated(keep=False) & frame[column].notna()]
        problems.append(
            [
                f"{column} '{_shown(value)}' is listed {len(rows)} times ({csv_lines(rows.index)})"
                for value, rows in twice.groupby(column, sort=True)
            ]
        )
    return problems


def _one_value_per(frame: pd.DataFrame, key: str, column: str, what: str) -> tuple[list[str], set[object]]:
    """Keys with more than one value of `column`, each value with its rows; and those keys."""
    if key not in frame.columns or column not in frame.columns:
        return [], set()
    rows = frame[frame[key].notna() & frame[column].notna()]
    values = rows.groupby(key, sort=True)[column].nunique()
    mixed = values[values > 1].index
    problems = []
    for value in mixed:
        own = rows[rows[key] == value]
        parts = [f"'{_shown(v)}' ({csv_lines(r.index)})" for v, r in own.groupby(column, sort=True)]
        problems.append(f"{key.replace('_', ' ')} '{_shown(value)}' has {what}: {' and '.join(parts)}")
    return problems, set(mixed)


def check_manifest(frame: pd.DataFrame, path: Path | str) -> None:
    """Check a manifest (or a split's rows) as data, not only as columns; ManifestError names every
    contradiction with its CSV lines and values.

    No key is empty, padded or non-ASCII; labels are benign/malignant and `target` agrees (0/1);
    magnifications are BreakHis's; no path or file name is listed twice; every patient has one
    label and one patient group, every patient group one label. Columns that `frame` lacks are not
    checked (split's train.csv has no `subtype`, say). A manifest written by ingest always passes:
    a failure means a hand-edited, merged or foreign file.
    """
    kinds = _key_problems(frame) + _value_problems(frame) + _listed_twice(frame)
    by_patient, mixed_patients = _one_value_per(frame, "patient", "label", "both labels")
    kinds.append(by_patient)
    kinds.append(_one_value_per(frame, "patient", "patient_group", "more than one patient group")[0])
    if "patient" in frame.columns and mixed_patients:  # a group of a mixed patient is mixed too: said once
        frame = frame[~frame["patient"].isin(mixed_patients)]
    kinds.append(_one_value_per(frame, "patient_group", "label", "both labels")[0])
    kinds = [kind for kind in kinds if kind]
    count = sum(len(kind) for kind in kinds)
    if count == 0:
        return
    if count == 1:
        raise ManifestError(f"{path}: {kinds[0][0]}")
    # the first few of every kind, so that a thousand padded names cannot hide one contradiction
    shown = "\n  ".join(listed(kind, SHOWN, "\n  ") for kind in kinds)
    raise ManifestError(
        f"{path}: {count} contradictions or empty keys (a hand-edited or foreign file? ingest "
        "writes it consistent):\n  " + shown
    )
