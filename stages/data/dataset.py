"""The BreaKHis_v1 layout: where images live and what their names say.

    BreaKHis_v1/histology_slides/breast/<benign|malignant>/SOB/<subtype>/<folder>/<mag>X/<file>.png
    folder  SOB_B_A_14-22549AB              (underscore before the year)
    file    SOB_B_A-14-22549AB-100-001.png  (hyphen before the year)

The patient group is the numeric slide root (`14-22549` for `22549AB`, `22549CD` and `22549G`):
the dataset does not say whether letter suffixes are different patients, so grouping by root is
the safe default for splits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.data.archives import ARCHIVE_SUFFIXES

SUBTYPES: dict[str, tuple[str, str]] = {
    "A": ("benign", "adenosis"),
    "F": ("benign", "fibroadenoma"),
    "PT": ("benign", "phyllodes_tumor"),
    "TA": ("benign", "tubular_adenoma"),
    "DC": ("malignant", "ductal_carcinoma"),
    "LC": ("malignant", "lobular_carcinoma"),
    "MC": ("malignant", "mucinous_carcinoma"),
    "PC": ("malignant", "papillary_carcinoma"),
}
LABELS = {"B": "benign", "M": "malignant"}
MAGNIFICATIONS = (40, 100, 200, 400)

FILE_NAME = re.compile(
    r"^SOB_(?P<label>[BM])_(?P<subtype>[A-Z]+)-(?P<year>\d{2})-(?P<slide>(?P<root>\d+)[A-Z]*)"
    r"-(?P<magnification>\d+)-(?P<seq>\d+)\.png$"
)
MAGNIFICATION_FOLDER = re.compile(r"\d+X")
CLUTTER = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
FOLDER_NAME = re.compile(r"^SOB_(?P<label>[BM])_(?P<subtype>[A-Z]+)_(?P<year>\d{2})-(?P<slide>\d+[A-Z]*)$")


class LayoutError(ValueError):
    """A file's name does not follow the BreakHis grammar or contradicts its folders."""


@dataclass(frozen=True)
class ImageRecord:
    """One BreakHis image and what its name and folders say about it."""

    source: str  # path of the raw file
    filename: str
    label: str  # benign | malignant
    subtype: str  # A, F, PT, TA, DC, LC, MC, PC
    patient: str  # slide folder, e.g. SOB_B_A_14-22549AB
    patient_group: str  # numeric slide root, e.g. 14-22549
    magnification: int

    @property
    def target(self) -> int:
        return int(self.label == "malignant")

    def as_row(self) -> dict[str, object]:
        return dict(vars(self))


def patient_folder(label_letter: str, subtype: str, year: str, slide: str) -> str:
    return f"SOB_{label_letter}_{subtype}_{year}-{slide}"


def image_filename(label_letter: str, subtype: str, year: str, slide: str, mag: int, seq: int) -> str:
    return f"SOB_{label_letter}_{subtype}-{year}-{slide}-{mag}-{seq:03d}.png"


def parse_image_name(path: Path) -> ImageRecord:
    """Parse a file's name alone (no folder checks): for images outside the official layout."""
    match = FILE_NAME.match(path.name)
    if match is None:
        raise LayoutError(
            f"{path}: file name does not follow the BreakHis grammar "
            "SOB_<B|M>_<type>-<yy>-<slide>-<mag>-<seq>.png"
        )
    fields = match.groupdict()
    if fields["subtype"] not in SUBTYPES:
        raise LayoutError(f"{path}: unknown tumour type '{fields['subtype']}' (known: {', '.join(SUBTYPES)})")
    label, _ = SUBTYPES[fields["subtype"]]
    if LABELS[fields["label"]] != label:
        raise LayoutError(
            f"{path}: type {fields['subtype']} is {label}, but the name says {LABELS[fields['label']]}"
        )
    magnification = int(fields["magnification"])
    if magnification not in MAGNIFICATIONS:
        raise LayoutError(f"{path}: magnification {magnification} is not one of {MAGNIFICATIONS}")
    return ImageRecord(
        source=str(path),
        filename=path.name,
        label=label,
        subtype=fields["subtype"],
        patient=patient_folder(fields["label"], fields["subtype"], fields["year"], fields["slide"]),
        patient_group=f"{fields['year']}-{fields['root']}",
        magnification=magnification,
    )


def parse_image_path(path: Path) -> ImageRecord:
    """Parse a file's name and check it against every folder of its path
    (`breast/<label>/SOB/<subtype>/<patient>/<mag>X`): the name fixes the whole path below
    `breast`, so a copied `SOB (1)` folder is refused and no file name can occur twice."""
    record = parse_image_name(path)
    folders = [parent.name for parent in path.parents[:6]] + [""] * 6
    expected = {
        "magnification folder": (folders[0], f"{record.magnification}X"),
        "patient folder": (folders[1], record.patient),
        "subtype folder": (folders[2], SUBTYPES[record.subtype][1]),
        "SOB folder": (folders[3], "SOB"),
        "class folder": (folders[4], record.label),
        "breast folder": (folders[5], "breast"),
    }
    for what, (found, wanted) in expected.items():
        if found != wanted:
            raise LayoutError(f"{path}: the name says {what} '{wanted}', but the file is in '{found}'")
    return record


def _hidden(path: Path) -> bool:
    """OS and archiver clutter: dot files (.DS_Store, ._*), __MACOSX, Thumbs.db, desktop.ini."""
    return any(part.startswith(".") or part in CLUTTER for part in path.parts)


def find_slides_root(path: Path, shown_as: Path | str | None = None) -> Path:
    """The one `histology_slides/breast` folder at or below `path` (official and Kaggle trees).

    Errors name `shown_as` (the archive, when `path` is its extraction) or else `path`.
    """
    shown = path if shown_as is None else shown_as
    if not path.exists():
        raise FileNotFoundError(f"data.path '{shown}' does not exist")
    if not path.is_dir():
        raise LayoutError(f"data.path '{shown}' is not a folder")
    if path.name == "breast" and path.parent.name == "histology_slides":
        return path
    found = sorted(
        slides / "breast"
        for slides in [path, *path.rglob("histology_slides")]
        if slides.name == "histology_slides"
        and (slides / "breast").is_dir()
        and not _hidden(slides.relative_to(path))
    )
    if len(found) == 1:
        return found[0]
    if found:
        raise LayoutError(
            f"data.path '{shown}' holds {len(found)} BreaKHis trees; point it at one of them:\n  "
            + "\n  ".join(str(f.parent.parent) for f in found)
        )
    archives = sorted(p.name for p in path.iterdir() if p.name.lower().endswith(ARCHIVE_SUFFIXES))
    hint = f" (it holds {', '.join(archives)}: set data.path to the archive itself)" if archives else ""
    raise LayoutError(f"data.path '{shown}': no BreaKHis_v1 tree (histology_slides/breast) in it{hint}")


@dataclass(frozen=True)
class TreeScan:
    """What a BreaKHis tree holds: the images to ingest and the files that were left out."""

    records: list[ImageRecord]
    ignored: list[str]  # clutter and non-image files outside the magnification folders
    other_magnifications: int  # images at magnifications not asked for


def scan_tree(
    path: Path,
    magnifications: Sequence[int] = MAGNIFICATIONS,
    shown_as: Path | str | None = None,
) -> TreeScan:
    """Every image of the tree at `path`, parsed and sorted by file name; all layout errors at once.

    Files in image positions (any .png, anything in a `<mag>X` folder) must follow the grammar and
    agree with their folders. Other files (documentation such as spreadsheets or READMEs, OS
    clutter) are listed as ignored; hidden and `__MACOSX` folders are not entered.
    """
    breast = find_slides_root(path, shown_as)
    records, problems, ignored, other = [], [], [], 0
    for folder, subfolders, files in os.walk(breast):
        subfolders[:] = sorted(d for d in subfolders if not (d.startswith(".") or d in CLUTTER))
        in_magnification = MAGNIFICATION_FOLDER.fullmatch(os.path.basename(folder)) is not None
        for name in sorted(files):
            file = os.path.join(folder, name)
            hidden = name.startswith(".") or name in CLUTTER
            if hidden or not (in_magnification or name.lower().endswith(".png")):
                ignored.append(file)
                continue
            try:
                record = parse_image_path(Path(file))
            except LayoutError as exc:
                problems.append(str(exc))
                continue
            if record.magnification in magnifications:
                records.append(record)
            else:
                other += 1
    if problems:
        raise LayoutError(
            f"{len(problems)} file(s) do not fit the BreakHis layout:\n  " + "\n  ".join(problems)
        )
    records.sort(key=lambda record: record.filename)
    if not records:
        shown = path if shown_as is None else shown_as
        raise LayoutError(f"data.path '{shown}': no images at magnifications {list(magnifications)}")
    return TreeScan(records, sorted(ignored), other)


def scan_images(path: Path, magnifications: Sequence[int] = MAGNIFICATIONS) -> list[ImageRecord]:
    """The images of the tree at `path` (see `scan_tree`)."""
    return scan_tree(path, magnifications).records
