"""The BreaKHis_v1 layout: where images live and what their names say.

    BreaKHis_v1/histology_slides/breast/<benign|malignant>/SOB/<subtype>/<folder>/<mag>X/<file>.png
    folder  SOB_B_A_14-22549AB              (underscore before the year)
    file    SOB_B_A-14-22549AB-100-001.png  (hyphen before the year)

The patient group is the numeric slide root (`14-22549` for `22549AB`, `22549CD` and `22549G`):
the dataset does not say whether letter suffixes are different patients, so grouping by root is
the safe default for splits.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

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
        return asdict(self)


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
    """Parse a file's name and check it against its folders (`<label>/SOB/<subtype>/<folder>/<mag>X`)."""
    record = parse_image_name(path)
    expected = {
        "magnification folder": (path.parent.name, f"{record.magnification}X"),
        "patient folder": (path.parent.parent.name, record.patient),
        "subtype folder": (path.parent.parent.parent.name, SUBTYPES[record.subtype][1]),
        "class folder": (path.parents[4].name if len(path.parents) > 4 else "", record.label),
    }
    for what, (found, wanted) in expected.items():
        if found != wanted:
            raise LayoutError(f"{path}: the name says {what} '{wanted}', but the file is in '{found}'")
    return record


def find_slides_root(path: Path) -> Path:
    """The `histology_slides/breast` folder at or below `path` (official and Kaggle trees)."""
    if not path.exists():
        raise FileNotFoundError(f"data.path '{path}' does not exist")
    if not path.is_dir():
        raise LayoutError(f"data.path '{path}' is not a folder")
    for candidate in [path, *sorted(path.rglob("histology_slides"))]:
        breast = (
            candidate / "breast"
            if candidate.name == "histology_slides"
            else candidate / "histology_slides" / "breast"
        )
        if breast.is_dir():
            return breast
    raise LayoutError(f"data.path '{path}': no BreaKHis_v1 tree (histology_slides/breast) found below it")


def scan_images(
    path: Path, magnifications: tuple[int, ...] | list[int] = MAGNIFICATIONS
) -> list[ImageRecord]:
    """Every image of the tree at `path`, parsed, sorted by file name; all layout errors at once."""
    breast = find_slides_root(path)
    records, problems = [], []
    for file in sorted(p for p in breast.rglob("*") if p.is_file()):
        try:
            record = parse_image_path(file)
        except LayoutError as exc:
            problems.append(str(exc))
            continue
        if record.magnification in magnifications:
            records.append(record)
    if problems:
        raise LayoutError(
            f"{len(problems)} file(s) do not fit the BreakHis layout:\n  " + "\n  ".join(problems)
        )
    records.sort(key=lambda record: record.filename)
    if not records:
        raise LayoutError(f"data.path '{path}': no images at magnifications {list(magnifications)}")
    return records
