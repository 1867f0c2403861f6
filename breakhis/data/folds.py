"""The published BreakHis folds, as the Kaggle "breakhis" download ships them in `Folds.csv`.

`Folds.csv` has one row per fold and image, with columns `fold` (1-5), `mag` (40, 100, 200, 400),
`grp` (train | test) and `filename` (a path ending in the image's file name, e.g.
`BreaKHis_v1/histology_slides/breast/benign/SOB/adenosis/SOB_B_A_14-22549AB/100X/SOB_B_A-...png`).

The manifest keeps them as one column per fold, `fold_1` ... `fold_5`, each `train` or `test`
(empty for sources without published folds), so "fold k as published" is one column to read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from breakhis.data.dataset import FILE_NAME, ImageRecord, is_clutter
from breakhis.pipeline.stage import listed_lines

FOLDS = (1, 2, 3, 4, 5)
FOLD_COLUMNS = tuple(f"fold_{k}" for k in FOLDS)
FOLDS_FILE = "Folds.csv"
COLUMNS = ("fold", "mag", "grp", "filename")
GROUPS = ("train", "test")


class FoldsError(ValueError):
    """Folds.csv is missing, malformed, or does not cover the images being ingested."""


def find_folds_file(root: Path, shown_as: Path | str) -> Path:
    """The shallowest Folds.csv at or below `root`; `shown_as` is the data.path to name in errors."""
    found = sorted(
        (p for p in root.rglob(FOLDS_FILE) if not any(map(is_clutter, p.relative_to(root).parts))),
        key=lambda p: (len(p.parts), str(p)),
    )
    if not found:
        raise FoldsError(
            f"data.source is 'kaggle', but there is no {FOLDS_FILE} in data.path '{shown_as}' "
            f"(the Kaggle download has it beside the BreaKHis_v1 folder: point data.path at the folder "
            f"or zip that holds both, or use data.source=breakhis)"
        )
    return found[0]


def read_folds(path: Path) -> pd.DataFrame:
    """Folds.csv as one row per image file name, with columns fold_1 ... fold_5 (train | test)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FoldsError(f"{path}: not a readable CSV file: {exc}") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise FoldsError(
            f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)}; "
            f"found {', '.join(raw.columns)})"
        )
    rows, problems = [], []
    for line, (fold, mag, group, filename) in enumerate(raw[list(COLUMNS)].itertuples(index=False), 2):
        name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
        match = FILE_NAME.fullmatch(name)
        if fold.strip() not in {str(k) for k in FOLDS}:
            problems.append(f"line {line}: fold '{fold}' is not one of {', '.join(map(str, FOLDS))}")
        elif group.strip().lower() not in GROUPS:
            problems.append(f"line {line}: grp '{group}' is not train or test")
        elif match is None:
            problems.append(f"line {line}: '{filename}' is not a BreakHis image file name")
        elif mag.strip() != match["magnification"]:
            problems.append(f"line {line}: mag {mag} contradicts the file name '{name}'")
        else:
            rows.append((name, f"fold_{fold.strip()}", group.strip().lower()))
    if problems:
        raise FoldsError(f"{path}: {len(problems)} bad row(s):\n  {listed_lines(problems)}")
    table = pd.DataFrame(rows, columns=["filename", "fold", "group"]).drop_duplicates()
    clashes = table[table.duplicated(["filename", "fold"], keep=False)]
    if not clashes.empty:
        pairs = sorted({f"{r.filename} ({r.fold})" for r in clashes.itertuples()})
        raise FoldsError(
            f"{path}: image(s) listed as both train and test in one fold:\n  {listed_lines(pairs)}"
        )
    wide = table.pivot(index="filename", columns="fold", values="group")
    return wide.reindex(columns=list(FOLD_COLUMNS)).fillna("")


def check_coverage(folds: pd.DataFrame, records: list[ImageRecord], path: Path) -> None:
    """Every image to ingest must have a train/test entry in every fold."""
    problems = []
    for record in records:
        if record.filename not in folds.index:
            problems.append(f"{record.source}: not in {FOLDS_FILE}")
            continue
        absent = [c for c in FOLD_COLUMNS if not folds.at[record.filename, c]]
        if absent:
            problems.append(f"{record.source}: no entry for {', '.join(absent)}")
    if problems:
        raise FoldsError(f"{path}: does not cover {len(problems)} image(s):\n  {listed_lines(problems)}")


def fold_columns(filenames: pd.Series, folds: pd.DataFrame | None) -> pd.DataFrame:
    """The fold_1 ... fold_5 columns for `filenames` (empty strings without published folds)."""
    if folds is None:
        return pd.DataFrame("", index=filenames.index, columns=list(FOLD_COLUMNS))
    return folds.reindex(filenames.to_numpy()).set_axis(filenames.index).fillna("")
