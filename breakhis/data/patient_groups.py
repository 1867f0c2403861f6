"""Patient groups: the unit that a split keeps whole.

`split.group_by` picks the numeric slide root (`patient_group`) or the slide folder
(`patient`). Groups that share a pixel-identical image (one row's `pixel_hash` equals another's, or
ingest's duplicates.csv says a dropped file was a copy of a kept one) are linked into one group:
identical pixels mean the same tissue, so they must land on the same side.
"""

from __future__ import annotations

import pandas as pd

from breakhis.data.dataset import FOLDER_NAME
from breakhis.data.manifest_checks import ManifestError, csv_lines

GROUP_COLUMNS = {"root": "patient_group", "folder": "patient"}


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
        raise ManifestError(f"empty {column} in {csv_lines(manifest.index[empty])}")
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
