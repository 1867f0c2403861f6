"""Kaggle Folds.csv: one train/test column per fold; bad rows and clashes are named by line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from breakhis.data.folds import FOLD_COLUMNS, FoldsError, find_folds_file, fold_columns, read_folds

NAME = "SOB_B_A-14-22549AB-100-001.png"
PATH = f"BreaKHis_v1/histology_slides/breast/benign/SOB/adenosis/SOB_B_A_14-22549AB/100X/{NAME}"


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "Folds.csv"
    path.write_text("\n".join(["fold,mag,grp,filename", *lines]) + "\n")
    return path


def test_reads_one_column_per_fold(tmp_path: Path) -> None:
    groups = ["train", "test", "train", "train", "test"]
    folds = read_folds(write(tmp_path, [f"{k},100,{g},{PATH}" for k, g in enumerate(groups, 1)]))
    assert list(folds.columns) == list(FOLD_COLUMNS)
    assert folds.loc[NAME].tolist() == groups
    names = pd.Series([NAME, "SOB_B_A-14-22549AB-100-002.png"], index=[7, 8])
    columns = fold_columns(names, folds)
    assert columns.loc[7].tolist() == groups and columns.loc[8].tolist() == [""] * 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"6,100,train,{PATH}", "line 2: fold '6'"),
        (f"1,100,valid,{PATH}", "line 2: grp 'valid'"),
        ("1,100,train,images/photo.png", "line 2: 'images/photo.png' is not a BreakHis image"),
        (f"1,40,train,{PATH}", "line 2: mag 40 contradicts"),
    ],
)
def test_bad_rows_are_named_by_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, [line])
    with pytest.raises(FoldsError, match=message) as error:
        read_folds(path)
    assert str(path) in str(error.value)


def test_train_and_test_in_one_fold_is_a_clash(tmp_path: Path) -> None:
    with pytest.raises(FoldsError, match=f"both train and test in one fold:\n  {NAME} \\(fold_1\\)"):
        read_folds(write(tmp_path, [f"1,100,train,{PATH}", f"1,100,test,{PATH}"]))


def test_the_shallowest_folds_csv_is_used_and_absence_is_named(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "Folds.csv").write_text("")
    (tmp_path / "a" / "Folds.csv").write_text("")
    assert find_folds_file(tmp_path, "x") == tmp_path / "a" / "Folds.csv"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FoldsError, match="no Folds.csv in data.path 'shown.zip'"):
        find_folds_file(tmp_path / "empty", "shown.zip")


@pytest.mark.parametrize("clutter", [".hidden", "__MACOSX", "Thumbs.db"])
def test_folds_csv_in_clutter_is_passed_over_as_ingest_passes_it(tmp_path: Path, clutter: str) -> None:
    """The one clutter rule (breakhis.data.dataset.is_clutter), below data.path only: a data.path
    that is itself in a hidden folder, or reached through `..`, still finds its Folds.csv."""
    root = tmp_path / ".datasets" / "kaggle"
    (root / clutter).mkdir(parents=True)
    (root / clutter / "Folds.csv").write_text("")
    with pytest.raises(FoldsError, match="no Folds.csv"):
        find_folds_file(root, "x")
    (root / "BreaKHis_v1").mkdir()
    (root / "BreaKHis_v1" / "Folds.csv").write_text("")
    assert find_folds_file(root, "x") == root / "BreaKHis_v1" / "Folds.csv"
    up = root / "BreaKHis_v1" / ".." / "BreaKHis_v1"
    assert find_folds_file(up, "x") == up / "Folds.csv"
