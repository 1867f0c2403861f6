"""The BreaKHis_v1 layout: where images live and what their names say.

    BreaKHis_v1/histology_slides/breast/<benign|malignant>/SOB/<subtype>/<folder>/<mag>X/<file>.png
    folder  SOB_B_A_14-22549AB              (underscore before the year)
    file    SOB_B_A-14-22549AB-100-001.png  (hyphen before the year)

The patient group is the numeric slide root (`14-22549` for `22549AB`, `22549CD` and `22549G`):
the dataset does not say whether letter suffixes are different patients, so grouping by root is
the safe default for splits.

Names are matched whole and in ASCII only (`[0-9]`, not `\\d`, which also takes Arabic-Indic or
full-width digits; `\\Z`, not `$`, which also takes a trailing newline): a name that only looks
like a BreakHis name is refused, never read with a different meaning.

Symbolic links are refused, not followed: a link anywhere below `data.path` (outside hidden
folders) stops ingest with every link named and counted, with where it points (inside data.path,
outside it, nowhere, or in a loop). Following them would let a tree leave `data.path` (whose
content DVC tracks), loop, or hold one image twice under two paths. `data.path` itself may be a
link. Files that are not regular files (FIFOs, sockets, devices) and folders named like images
(`x.png/`) in the tree are layout errors too, so nothing is skipped silently.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from breakhis.data.archives import ARCHIVE_SUFFIXES
from breakhis.pipeline.stage import listed, listed_lines
from breakhis.pipeline.task import SUBTYPES

LABELS = {"B": "benign", "M": "malignant"}
MAGNIFICATIONS = (40, 100, 200, 400)

# ASCII only and matched whole (`fullmatch`, and `\A...\Z` for any other use): see the docstring
FILE_NAME = re.compile(
    r"\ASOB_(?P<label>[BM])_(?P<subtype>[A-Z]+)-(?P<year>[0-9]{2})-(?P<slide>(?P<root>[0-9]+)[A-Z]*)"
    r"-(?P<magnification>[0-9]+)-(?P<seq>[0-9]+)\.png\Z",
    re.ASCII,
)
MAGNIFICATION_FOLDER = re.compile(r"\A[0-9]+X\Z", re.ASCII)
# OS and archiver clutter, never data, in ingest and predict alike: dot files and folders (.DS_Store,
# macOS's ._* twins of every image copied to a FAT drive, .git/, .Trash-1000/) and these names, in any case
CLUTTER = frozenset(
    {"__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "$recycle.bin", "system volume information"}
)
FOLDER_NAME = re.compile(
    r"\ASOB_(?P<label>[BM])_(?P<subtype>[A-Z]+)_(?P<year>[0-9]{2})-(?P<slide>[0-9]+[A-Z]*)\Z", re.ASCII
)


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


def shown_path(path: Path | str) -> str:
    """`path` as an error shows it: control and non-ASCII characters escaped (a newline in a name
    would break the one-line message, a look-alike letter would hide what is wrong)."""
    text = str(path)
    return text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _unusual_characters(name: str) -> str:
    odd = sorted({c for c in name if not (c.isascii() and c.isprintable())})
    if not odd:
        return ""
    codes = listed([f"U+{ord(c):04X}" for c in odd])
    return f" (it holds {codes}: only ASCII letters, digits, '_', '-' and '.' are allowed)"


def parse_image_name(path: Path) -> ImageRecord:
    """Parse a file's name alone (no folder checks): for images outside the official layout."""
    match = FILE_NAME.fullmatch(path.name)
    if match is None:
        raise LayoutError(
            f"{shown_path(path)}: file name does not follow the BreakHis grammar "
            f"SOB_<B|M>_<type>-<yy>-<slide>-<mag>-<seq>.png{_unusual_characters(path.name)}"
        )
    fields = match.groupdict()
    if fields["subtype"] not in SUBTYPES:
        raise LayoutError(
            f"{shown_path(path)}: unknown tumour type '{fields['subtype']}' (known: {', '.join(SUBTYPES)})"
        )
    label, _ = SUBTYPES[fields["subtype"]]
    if LABELS[fields["label"]] != label:
        raise LayoutError(
            f"{shown_path(path)}: type {fields['subtype']} is {label}, "
            f"but the name says {LABELS[fields['label']]}"
        )
    if fields["magnification"] not in {str(m) for m in MAGNIFICATIONS}:  # 0100 is not 100 either
        raise LayoutError(
            f"{shown_path(path)}: magnification {fields['magnification']} is not one of {MAGNIFICATIONS}"
        )
    magnification = int(fields["magnification"])
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
            raise LayoutError(
                f"{shown_path(path)}: the name says {what} '{wanted}', "
                f"but the file is in '{shown_path(found)}'"
            )
    return record


def is_clutter(name: str) -> bool:
    """A file or folder name that is OS or archiver clutter (`CLUTTER`, or a leading dot): the one rule
    of what ingest, Folds.csv's search and predict's folders pass over, never read as data."""
    return name.startswith(".") or name.lower() in CLUTTER


def _link_target(link: Path, root: Path) -> str:
    """Where a symbolic link points, for an error: its text and whether that is in `root`."""
    text = os.readlink(link)
    try:
        resolved = link.resolve(strict=True)
    except RuntimeError:  # Python 3.11: a loop
        return f"{text} (a loop)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{text} (a loop)"
        return f"{text} (nowhere: it is dangling)"
    inside = resolved == root or root in resolved.parents
    return f"{text} ({'inside' if inside else 'outside'} data.path)"


def _refuse_links(links: list[Path], root: Path, shown: Path | str) -> LayoutError:
    links_shown = listed_lines(
        [f"{shown_path(link)} -> {shown_path(_link_target(link, root))}" for link in links]
    )
    return LayoutError(
        f"data.path '{shown}': {len(links)} symbolic link(s) in it, which ingest does not follow (a link "
        "can leave data.path, loop, or show an image twice); replace each by a copy of what it points "
        "to (cp -rL), or point data.path at the real folder:\n  " + links_shown
    )


def _walk(path: Path) -> tuple[list[Path], list[Path]]:
    """The `histology_slides/breast` folders at or below `path` and every symbolic link there
    (folders and files), outside hidden and clutter folders; links are never entered."""
    found, links = [], []
    for folder, subfolders, files in os.walk(
        path
    ):  # followlinks=False: a linked folder is listed, not entered
        here = Path(folder)
        entered = []
        for name in sorted(subfolders):
            if is_clutter(name):
                continue
            if (here / name).is_symlink():
                links.append(here / name)
            else:
                entered.append(name)
        subfolders[:] = entered
        links += [
            here / name for name in sorted(files) if not is_clutter(name) and (here / name).is_symlink()
        ]
        if here.name == "breast" and here.parent.name == "histology_slides":
            found.append(here)
    return sorted(found), links


def find_slides_root(path: Path, shown_as: Path | str | None = None) -> Path:
    """The one `histology_slides/breast` folder at or below `path` (official and Kaggle trees).

    Errors name `shown_as` (the archive, when `path` is its extraction) or else `path`. A symbolic
    link anywhere below `path` is refused (all of them named); `path` itself may be one.
    """
    shown = path if shown_as is None else shown_as
    if not path.exists():
        raise FileNotFoundError(f"data.path '{shown}' does not exist")
    if not path.is_dir():
        raise LayoutError(f"data.path '{shown}' is not a folder")
    found, links = _walk(path)
    if links:
        raise _refuse_links(links, path.resolve(), shown)
    if path.name == "breast" and path.parent.name == "histology_slides":
        return path
    if len(found) == 1:
        return found[0]
    if found:
        raise LayoutError(
            f"data.path '{shown}' holds {len(found)} BreaKHis trees; point it at one of them:\n  "
            + "\n  ".join(str(f.parent.parent) for f in found)
        )
    archives = sorted(
        p.name for p in path.iterdir() if p.name.lower().endswith(ARCHIVE_SUFFIXES) and not is_clutter(p.name)
    )
    hint = f" (it holds {', '.join(archives)}: set data.path to the archive itself)" if archives else ""
    raise LayoutError(f"data.path '{shown}': no BreaKHis_v1 tree (histology_slides/breast) in it{hint}")


@dataclass(frozen=True)
class TreeScan:
    """What a BreaKHis tree holds: the images to ingest and the files that were left out."""

    records: list[ImageRecord]
    ignored: list[str]  # clutter and non-image files outside the magnification folders
    other_magnifications: int  # images at magnifications not asked for


def _entry_problem(path: str) -> str:
    """Why a directory entry in image position cannot be an image ('' when it is a regular file)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link, which ingest does not follow"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return ""


def scan_tree(
    path: Path,
    magnifications: Sequence[int] = MAGNIFICATIONS,
    shown_as: Path | str | None = None,
) -> TreeScan:
    """Every image of the tree at `path`, parsed and sorted by file name; all layout errors at once.

    Files in image positions (any .png, anything in a `<mag>X` folder) must follow the grammar,
    agree with their folders and be regular files; a folder named like an image (`x.png/`) is an
    error too. Other files (documentation such as spreadsheets or READMEs, OS clutter) are listed
    as ignored; hidden and `__MACOSX` folders are not entered, links never (`find_slides_root`
    refuses them first).
    """
    breast = find_slides_root(path, shown_as)
    records, problems, ignored, other = [], [], [], 0
    for folder, subfolders, files in os.walk(breast):
        subfolders[:] = sorted(d for d in subfolders if not is_clutter(d))
        problems += [
            f"{shown_path(os.path.join(folder, name))}: a folder named like an image file"
            for name in subfolders
            if name.lower().endswith(".png")
        ]
        in_magnification = MAGNIFICATION_FOLDER.fullmatch(os.path.basename(folder)) is not None
        for name in sorted(files):
            file = os.path.join(folder, name)
            hidden = is_clutter(name)
            if hidden or not (in_magnification or name.lower().endswith(".png")):
                ignored.append(file)
                continue
            problem = _entry_problem(file)
            if problem:
                problems.append(f"{shown_path(file)}: {problem}")
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
