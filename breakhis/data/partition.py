"""Splitting the manifest into train/val/test without letting a patient sit in two splits.

Strategies (`split.strategy`):
  patient   train/val/test by patient group, sizes from params (the default);
  kfold     `folds` patient-grouped folds; fold `fold` is the test split, val is carved from the rest;
  official  the published Kaggle Folds.csv fold, repaired where a patient group or a pixel-identical
            image sits on both sides; val is carved from train;
  image     a random split by image: leaky on purpose, only to reproduce image-level figures.

Patient groups: `split.group_by` picks the numeric slide root (`patient_group`) or the slide folder
(`patient`). Groups that share a pixel-identical image (one row's `pixel_hash` equals another's, or
ingest's duplicates.csv says a dropped file was a copy of a kept one) are linked into one group:
identical pixels mean the same tissue, so they must land on the same side.

Stratification: groups are assigned whole, by a seeded greedy pass (groups in random order, each to
the part that leaves the smallest squared gap between the images each part has and the images it
should have) polished by single-group moves and pairwise swaps until nothing improves. The gap is
counted per class, plus half-weighted per class+subtype, so classes are matched first and subtypes
as far as the groups allow (a subtype with fewer groups than parts cannot be everywhere).
With one image per group this puts every part within one image of its share of every class.

`task: subtype` (the eight subtypes are the classes): the subtype gap weighs twice the class gap,
then groups are moved so that every part holds every subtype that has at least as many groups as
there are parts (`_cover_subtypes`). A k-fold split refuses a subtype with fewer patient groups
than folds, and every split refuses a val or test split without a subtype that train has: each
error names the subtype and its patients per split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from breakhis.data.dataset import FOLDER_NAME, MAGNIFICATIONS
from breakhis.pipeline.params import SplitParams
from breakhis.pipeline.stage import listed
from breakhis.pipeline.task import SUBTYPES

SPLITS = ("train", "val", "test")
GROUP_COLUMNS = {"root": "patient_group", "folder": "patient"}
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
OFFICIAL_FOLDS = 5  # Folds.csv has folds 1..5; split.fold 0..4 picks one
SUBTYPE_WEIGHT = 0.5  # weight of the per-subtype gap relative to the per-class gap
SUBTYPE_TASK_WEIGHT = 2.0  # the same with task: subtype, where the subtypes are the classes
POLISH_MAX_GROUPS = 2000  # the move/swap polish is quadratic; single-image groups do not need it
POLISH_MAX_PASSES = 50
TOLERANCE = 1e-6
Seed = int | list[int]  # anything np.random.default_rng takes


class LeakError(AssertionError):
    """A patient group or a pixel-identical image appears in two splits."""


class ManifestError(ValueError):
    """A manifest (or split) table whose rows contradict each other or leave a key empty."""


# ---------------------------------------------------------------------------------------------
# the manifest as data

KEY_COLUMNS = ("path", "filename", "label", "patient", "patient_group", "subtype", "pixel_hash")
ASCII_COLUMNS = ("filename", "label", "patient", "patient_group", "subtype", "pixel_hash")
TARGETS = {"benign": 0, "malignant": 1}
SHOWN_PROBLEMS = 20  # problems listed in full in one error message
SHOWN_LINES = 5  # line numbers listed for one problem


def _lines(index: Sequence[Any] | pd.Index) -> str:
    """CSV line numbers of frame rows (header on line 1), e.g. `lines 2, 3, 9`."""
    numbers = [int(i) + 2 for i in list(index)]
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    if len(numbers) <= SHOWN_LINES:
        return f"lines {', '.join(map(str, numbers))}"
    return f"lines {', '.join(map(str, numbers[:SHOWN_LINES]))}, ... ({len(numbers)} rows)"


def _shown(value: object) -> str:
    text = str(value)
    return text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _key_problems(frame: pd.DataFrame) -> list[str]:
    problems = []
    for column in KEY_COLUMNS:
        if column not in frame.columns:
            continue
        values = frame[column]
        text = values.astype("string")
        empty = values.isna() | (text.str.strip() == "").fillna(True).astype(bool)
        if empty.any():
            problems.append(f"empty {column} in {_lines(frame.index[empty])}")
        padded = ~empty & (text != text.str.strip()).fillna(False).astype(bool)
        for i in frame.index[padded][:SHOWN_LINES]:
            problems.append(
                f"{_lines([i])}: {column} '{_shown(values[i])}' has spaces or line breaks around it"
            )
        odd = ~empty & ~text.map(lambda v: v.isprintable(), na_action="ignore").fillna(True).astype(bool)
        if column in ASCII_COLUMNS:
            odd |= ~empty & ~text.map(lambda v: v.isascii(), na_action="ignore").fillna(True).astype(bool)
        for i in frame.index[odd & ~padded][:SHOWN_LINES]:
            problems.append(
                f"{_lines([i])}: {column} '{_shown(values[i])}' holds a control or non-ASCII character "
                "(a look-alike letter? ingest writes ASCII names)"
            )
    return problems


def _value_problems(frame: pd.DataFrame) -> list[str]:
    problems = []
    if "label" in frame.columns:
        known = frame["label"].isin(list(TARGETS)) | frame["label"].isna()
        for i in frame.index[~known][:SHOWN_LINES]:
            problems.append(
                f"{_lines([i])}: label '{_shown(frame.at[i, 'label'])}' is not benign or malignant"
            )
    if "target" in frame.columns:
        target = pd.to_numeric(frame["target"], errors="coerce")
        bad = ~target.isin([0, 1])
        for i in frame.index[bad][:SHOWN_LINES]:
            value = frame["target"][i]
            shown = "empty" if pd.isna(value) else f"'{_shown(value)}'"
            problems.append(f"{_lines([i])}: target {shown} is not 0 or 1")
        if "label" in frame.columns:
            expected = frame["label"].map(TARGETS)
            clash = ~bad & expected.notna() & (target != expected)
            for i in frame.index[clash][:SHOWN_LINES]:
                problems.append(
                    f"{_lines([i])}: target {int(target[i])} contradicts label '{frame['label'][i]}' "
                    "(benign is 0, malignant 1)"
                )
    if "magnification" in frame.columns:
        magnification = pd.to_numeric(frame["magnification"], errors="coerce")
        bad = ~magnification.isin(list(MAGNIFICATIONS))
        for i in frame.index[bad][:SHOWN_LINES]:
            value = frame["magnification"][i]
            shown = "empty" if pd.isna(value) else f"'{_shown(value)}'"
            problems.append(
                f"{_lines([i])}: magnification {shown} is not one of {', '.join(map(str, MAGNIFICATIONS))}"
            )
    return problems


def _listed_twice(frame: pd.DataFrame) -> list[str]:
    problems = []
    for column in ("path", "filename"):
        if column not in frame.columns:
            continue
        twice = frame[frame[column].duplicated(keep=False) & frame[column].notna()]
        for value, rows in list(twice.groupby(column, sort=True))[:SHOWN_LINES]:
            problems.append(f"{column} '{_shown(value)}' is listed {len(rows)} times ({_lines(rows.index)})")
    return problems


def _one_value_per(frame: pd.DataFrame, key: str, column: str, what: str) -> tuple[list[str], set[object]]:
    """Keys with more than one value of `column`, each value with its rows; and those keys."""
    if key not in frame.columns or column not in frame.columns:
        return [], set()
    rows = frame[frame[key].notna() & frame[column].notna()]
    values = rows.groupby(key, sort=True)[column].nunique()
    mixed = values[values > 1].index
    problems = []
    for value in mixed[:SHOWN_LINES]:
        own = rows[rows[key] == value]
        parts = [f"'{_shown(v)}' ({_lines(r.index)})" for v, r in own.groupby(column, sort=True)]
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
    problems = _key_problems(frame) + _value_problems(frame) + _listed_twice(frame)
    by_patient, mixed_patients = _one_value_per(frame, "patient", "label", "both labels")
    problems += by_patient
    in_groups, _ = _one_value_per(frame, "patient", "patient_group", "more than one patient group")
    problems += in_groups
    if "patient" in frame.columns and mixed_patients:  # a group of a mixed patient is mixed too: said once
        frame = frame[~frame["patient"].isin(mixed_patients)]
    problems += _one_value_per(frame, "patient_group", "label", "both labels")[0]
    if not problems:
        return
    if len(problems) == 1:
        raise ManifestError(f"{path}: {problems[0]}")
    shown = listed(problems, SHOWN_PROBLEMS, "\n  ")
    raise ManifestError(
        f"{path}: {len(problems)} contradictions or empty keys (a hand-edited or foreign file? ingest "
        "writes it consistent):\n  " + shown
    )


@dataclass
class SplitResult:
    """The splits (rows of the manifest, in manifest order) and what the strategy did, for metrics."""

    splits: dict[str, pd.DataFrame]
    leaky: bool = False
    info: dict[str, object] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# patient groups


def official_fold_column(fold: int) -> str:
    """Manifest column holding Folds.csv fold `fold + 1` (split.fold is 0-based)."""
    return f"fold_{fold + 1}"


def folder_group(folder: str, group_by: str) -> str:
    """The patient group of a slide folder name (`SOB_M_LC_14-13412` -> `14-13412` by root)."""
    if group_by == "folder":
        return folder
    match = FOLDER_NAME.fullmatch(folder)
    if match is None:
        return folder
    root = match["slide"].rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # 22549AB -> 22549
    return f"{match['year']}-{root}"


def _twin_links(
    manifest: pd.DataFrame, column: str, duplicates: pd.DataFrame | None
) -> list[tuple[str, str]]:
    """Pairs of groups that hold pixel-identical images."""
    links = []
    twins = manifest[manifest["pixel_hash"].duplicated(keep=False)]
    for _, groups in twins.groupby("pixel_hash", sort=True)[column]:
        members = sorted(set(groups))
        links += [(members[0], other) for other in members[1:]]
    if duplicates is not None and {"filename", "patient", "duplicate_of"} <= set(duplicates.columns):
        kept = manifest.set_index("filename")[column]
        group_by = "folder" if column == "patient" else "root"
        for row in duplicates.itertuples():
            if row.duplicate_of in kept.index:
                links.append((str(kept.loc[str(row.duplicate_of)]), folder_group(str(row.patient), group_by)))
    return [(a, b) for a, b in links if a != b]


def group_keys(manifest: pd.DataFrame, group_by: str, duplicates: pd.DataFrame | None = None) -> pd.Series:
    """The split unit of every row: its patient group, with groups linked by pixel twins merged.

    A merged group is named by its members joined with '+', in sorted order.
    """
    column = GROUP_COLUMNS[group_by]
    empty = manifest[column].isna()
    if empty.any():  # NaN != NaN: a NaN key would never find its own root
        raise ManifestError(f"empty {column} in {_lines(manifest.index[empty])}")
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        for _ in range(len(parent) + 1):  # a chain is at most every key long: this loop always ends
            up = parent.setdefault(x, x)
            if up == x:
                return x
            parent[x] = parent.setdefault(up, up)
            x = parent[x]
        raise RuntimeError(f"the patient-group links do not end at a root (at {x!r}): a bug")

    for a, b in _twin_links(manifest, column, duplicates):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, set[str]] = {}
    for name in set(manifest[column]) | set(parent):
        members.setdefault(find(name), set()).add(name)
    present = set(manifest[column])
    names = {
        name: "+".join(sorted(group & present))
        for group in members.values()
        for name in group
        if name in present
    }
    return manifest[column].map(names).rename("group")


def linked_groups(keys: pd.Series) -> list[str]:
    """Groups that were merged because they share pixel-identical images."""
    return sorted(key for key in keys.unique() if "+" in key)


# ---------------------------------------------------------------------------------------------
# stratified assignment of whole groups to parts


def _polish(counts: np.ndarray, weights: np.ndarray, excess: np.ndarray, part: np.ndarray) -> None:
    """Move or swap single groups between parts while that lowers the weighted squared gap."""
    for _ in range(POLISH_MAX_PASSES):
        improved = False
        for g in range(len(counts)):
            p, x = part[g], counts[g]
            gains = 2 * ((excess - excess[p] + x) * x * weights).sum(axis=1)  # move g from p to q
            q = int(np.argmin(gains))
            if gains[q] < -TOLERANCE:
                excess[p] -= x
                excess[q] += x
                part[g] = q
                improved = True
                continue
            d = x - counts  # swap g (in p) with b (in part[b]): p loses d, part[b] gains d
            gains = 2 * ((excess[part] - excess[p] + d) * d * weights).sum(axis=1)
            gains[part == p] = np.inf
            b = int(np.argmin(gains))
            if gains[b] < -TOLERANCE:
                q = part[b]
                excess[p] -= d[b]
                excess[q] += d[b]
                part[g], part[b] = q, p
                improved = True
        if not improved:
            return


def assign_groups(
    frame: pd.DataFrame, keys: pd.Series, fractions: Sequence[float], seed: Seed, *, subtypes: bool = False
) -> pd.Series:
    """Part index (0..len(fractions)-1) of every group, each part getting about its fraction of
    the images of every class, then of every subtype; with `subtypes` (task: subtype), subtypes
    weigh more and every part is given every subtype the groups allow. Seeded; independent of row order."""
    strata_class = frame["target"].astype(str)
    strata_subtype = strata_class + "/" + frame["subtype"].astype(str)
    by_class = pd.crosstab(keys, strata_class)
    by_subtype = pd.crosstab(keys, strata_subtype).reindex(by_class.index)
    counts = np.hstack([by_class.to_numpy(float), by_subtype.to_numpy(float)])
    subtype_weight = SUBTYPE_TASK_WEIGHT if subtypes else SUBTYPE_WEIGHT
    weights = np.concatenate([np.ones(by_class.shape[1]), np.full(by_subtype.shape[1], subtype_weight)])
    shares = np.asarray(fractions, dtype=float)[:, None]
    excess = -shares * counts.sum(axis=0)  # images a part has minus images it should have
    part = np.zeros(len(counts), dtype=int)
    for g in np.random.default_rng(seed).permutation(len(counts)):
        x = counts[g]
        p = int(np.argmin(((2 * excess + x) * x * weights).sum(axis=1)))
        part[g] = p
        excess[p] += x
    if len(counts) <= POLISH_MAX_GROUPS:
        _polish(counts, weights, excess, part)
    if subtypes:
        _cover_subtypes(by_subtype.to_numpy() > 0, counts, weights, excess, part)
    return pd.Series(part, index=by_class.index, name="part")


def _cover_subtypes(
    holds: np.ndarray, counts: np.ndarray, weights: np.ndarray, excess: np.ndarray, part: np.ndarray
) -> None:
    """Move groups so that every part holds every subtype (`holds[g, s]`: group g has images of
    subtype s) that has at least as many groups as there are parts, rarest subtype first. A group
    moves only from a part that keeps another group of each subtype it holds; of those, the move
    that widens the weighted squared gap least. Deterministic."""
    parts = len(excess)
    for s in np.argsort(holds.sum(axis=0), kind="stable"):
        if holds[:, s].sum() < parts:
            continue  # it cannot be everywhere: the split checks name it
        for p in range(parts):
            if holds[part == p, s].any():
                continue
            best, best_cost = None, np.inf
            for g in np.flatnonzero(holds[:, s]):
                q = part[g]
                others = holds[(part == q) & (np.arange(len(part)) != g)]
                if not others[:, holds[g]].any(axis=0).all():
                    continue  # q would lose its last group of a subtype g holds
                x = counts[g]
                cost = (
                    ((excess[p] + x) ** 2 - excess[p] ** 2 + (excess[q] - x) ** 2 - excess[q] ** 2) * weights
                ).sum()
                if cost < best_cost:
                    best, best_cost = g, cost
            if best is not None:
                excess[part[best]] -= counts[best]
                excess[p] += counts[best]
                part[best] = p


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
                f"({', '.join(map(str, held[:6]))}{', ...' if len(held) > 6 else ''}), fewer than the "
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
            f"split.strategy 'official': {len(bad)} image(s) have no train/test value in '{column}', "
            f"e.g. {', '.join(bad.head(3))}"
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
    if params.strategy == "patient":
        splits = split_by_patient(
            manifest,
            val_size=params.val_size,
            test_size=params.test_size,
            group_by=params.group_by,
            seed=seed,
            duplicates=duplicates,
            task=task,
            train_on_val=train_on_val,
        )
    elif params.strategy == "kfold":
        splits = split_kfold(
            manifest,
            folds=params.folds,
            fold=params.fold,
            val_size=params.val_size,
            group_by=params.group_by,
            seed=seed,
            duplicates=duplicates,
            task=task,
            train_on_val=train_on_val,
        )
        info.update(folds=params.folds, fold=params.fold)
    elif params.strategy == "official":
        splits, report = split_official(
            manifest,
            fold=params.fold,
            val_size=params.val_size,
            group_by=params.group_by,
            seed=seed,
            duplicates=duplicates,
            task=task,
            train_on_val=train_on_val,
        )
        info.update(fold=params.fold, **report)
    else:
        splits = split_by_image(
            manifest,
            val_size=params.val_size,
            test_size=params.test_size,
            seed=seed,
            task=task,
            train_on_val=train_on_val,
        )
    return SplitResult(splits, leaky=params.strategy == "image", info=info)


# ---------------------------------------------------------------------------------------------
# checks and summaries


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
