"""The image files a prediction run's inputs name: files, folders (searched recursively, links
followed once) and CSVs of paths, each file once, with what was left out and why; needs no
TensorFlow.
"""

from __future__ import annotations

import codecs
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from breakhis.data.dataset import is_clutter
from breakhis.data.images import FORMATS
from breakhis.pipeline.files import FILE, FOLDER, MISSING, file_kind, is_special
from breakhis.pipeline.stage import listed, listed_lines

IMAGE_SUFFIXES = tuple(FORMATS)


@dataclass(frozen=True)
class Inputs:
    """The image files the inputs name, each once, and what was left out and why."""

    named: list[str]  # every image file named, in order: a file given twice is here twice
    paths: list[str]  # each file once (by its resolved path), the first spelling kept: what runs
    duplicates: list[tuple[str, str]]  # (spelling left out, spelling kept), one per repetition
    csvs: list[str]  # the CSV files given
    skipped: list[str]  # files in the folders that are not images (with what they are, if special)
    hidden: list[str]  # hidden and system files and folders in the folders (folders end with '/')
    relinked: list[str]  # links to a folder already searched (a loop, or a second way in)

    def warnings(self) -> list[str]:
        warnings = []
        if self.skipped:
            warnings.append(
                f"{len(self.skipped)} file(s) in the input folders are not images "
                f"({', '.join(IMAGE_SUFFIXES)}) and were skipped: {listed(self.skipped)}"
            )
        if self.relinked:
            warnings.append(
                f"{len(self.relinked)} symbolic link(s) to a folder already searched, or holding one "
                f"(a loop), not followed: {listed(self.relinked)}"
            )
        if self.duplicates:
            repeats = Counter(self.duplicates)
            named = [
                f"{kept} ({count + 1} times)"
                if left_out == kept
                else f"{left_out} (= {kept}{f', {count} times' if count > 1 else ''})"
                for (left_out, kept), count in repeats.items()
            ]
            warnings.append(
                f"{len(self.duplicates)} input(s) given more than once, each predicted and counted once: "
                f"{listed(named)}"
            )
        return warnings

    def summary(self) -> str:
        """The count of what was skipped without a warning ('' when nothing was)."""
        return f"{len(self.hidden)} hidden or system file(s) or folder(s) skipped" if self.hidden else ""


@dataclass
class _Found:
    """What a search of the inputs gathers."""

    named: list[str] = field(default_factory=list)
    csvs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)


def _within(real: str, searched: set[str]) -> bool:
    """`real` was searched, or holds a folder that was (a link to an ancestor: a loop)."""
    prefix = os.path.join(real, "")
    return real in searched or any(folder.startswith(prefix) for folder in searched)


def _search_folder(folder: Path, found: _Found) -> list[str]:
    """The image files under `folder`. Symbolic links to folders are followed, each target once:
    a link to a folder already searched, or to one holding it (a loop), is named and not entered.
    Hidden and system entries are counted, other non-images named; a broken link named like an
    image is missing; an unreadable folder is a PermissionError."""
    images: list[str] = []
    searched: set[str] = set()
    unreadable: list[OSError] = []
    tops = [str(folder)]
    while tops:
        top = tops.pop(0)
        if _within(os.path.realpath(top), searched):
            found.relinked.append(top)
            continue
        links = []
        for root, dirs, files in os.walk(top, onerror=unreadable.append):  # links to folders: not entered
            searched.add(os.path.realpath(root))
            kept = []
            for name in sorted(dirs):
                path = str(Path(root, name))
                if is_clutter(name):
                    found.hidden.append(path + "/")
                elif os.path.islink(path):
                    links.append(path)
                else:
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(files):
                path = str(Path(root, name))
                kind = file_kind(path)
                image = Path(name).suffix.lower() in IMAGE_SUFFIXES
                if is_clutter(name):
                    found.hidden.append(path)
                elif kind == FILE:
                    (images if image else found.skipped).append(path)
                elif image and not is_special(kind):  # a broken link, a loop: an image that is missing
                    found.missing.append(f"{path} ({kind})")
                else:
                    found.skipped.append(f"{path} ({kind})")
        queued = {os.path.realpath(t) for t in tops}
        for path in links:
            if _within(os.path.realpath(path), searched | queued):
                found.relinked.append(path)
            else:
                tops.append(path)
                queued.add(os.path.realpath(path))
    if unreadable:
        raise PermissionError(
            f"{folder}: {len(unreadable)} folder(s) in it cannot be read: "
            + listed([f"{exc.filename} ({exc.strerror})" for exc in unreadable])
        )
    return sorted(images, key=Path)


def _listed_in_csv(csv_path: Path, value: str) -> tuple[str, str]:
    """A CSV's path value as a path, and what is there. Relative paths are from the current folder
    (like data/split/*.csv), else from the CSV's folder."""
    candidate = Path(value)
    kind = file_kind(candidate)
    if not candidate.is_absolute() and kind == MISSING:
        beside = csv_path.parent / candidate
        if (beside_kind := file_kind(beside)) != MISSING:
            return str(beside), beside_kind
    return str(candidate), kind


def _paths_from_csv(csv_path: Path, missing: list[str] | None = None) -> list[str]:
    """The paths in a CSV's `path` column, each checked: a CSV lists image files, not folders or
    other CSVs (never followed: no recursion). Missing files are added to `missing`
    (FileNotFoundError when no list is given); everything else wrong is a ValueError naming the line."""
    with csv_path.open("rb") as handle:
        head = handle.read(8192)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError(f"{csv_path}: UTF-16 text; save it as a UTF-8 CSV")
    if b"\0" in head:
        raise ValueError(f"{csv_path}: binary data, not a CSV text file")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        byte = f"byte 0x{exc.object[exc.start]:02x}" if isinstance(exc.object, bytes) else "a byte"
        raise ValueError(
            f"{csv_path}: not a readable CSV (not UTF-8 text: {byte} at position {exc.start}); "
            "save it as a UTF-8 CSV"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from exc
    if "path" not in frame.columns:
        raise ValueError(f"{csv_path}: no 'path' column (columns: {', '.join(frame.columns) or 'none'})")
    if frame.empty:
        raise ValueError(f"{csv_path}: no rows (a header and nothing under it)")
    own = [] if missing is None else missing
    looked_up: dict[str, tuple[str, str]] = {}  # value -> (path, kind): 100,000 rows of one path stat once
    paths = []
    for index, value in enumerate(frame["path"]):
        line = index + 2  # the header is line 1
        if not value.strip():
            raise ValueError(f"{csv_path}: empty value in the 'path' column (line {line})")
        if value not in looked_up:
            looked_up[value] = _listed_in_csv(csv_path, value)
        path, kind = looked_up[value]
        if kind == FILE and Path(path).suffix.lower() == ".csv":
            raise ValueError(
                f"{csv_path}: line {line} lists a CSV ({value}): CSVs inside CSVs are not followed; "
                "give it on the command line"
            )
        if kind == FOLDER:
            raise ValueError(
                f"{csv_path}: line {line} lists a folder ({value}); a CSV lists image files: give the "
                "folder on the command line"
            )
        if is_special(kind):
            raise ValueError(f"{csv_path}: line {line} lists {kind} ({value}); a CSV lists image files")
        if kind != FILE:
            note = "" if kind == MISSING else f", {kind}"
            own.append(f"{value} (listed in {csv_path}, line {line}{note})")
        paths.append(path)
    if missing is None and own:
        raise FileNotFoundError(_not_found(own))
    return paths


def _not_found(missing: Sequence[str]) -> str:
    return f"{len(missing)} input(s) not found:\n  " + listed_lines(missing)


def _once_each(named: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Each file once, by its resolved path (spellings, relative or absolute, symbolic links), the
    first spelling kept; and the (left out, kept) spellings of the repetitions."""
    kept: dict[str, str] = {}
    resolved: dict[str, str] = {}
    duplicates = []
    for path in named:
        real = resolved.get(path)
        if real is None:
            real = resolved[path] = os.path.realpath(path)
        if real in kept:
            duplicates.append((path, kept[real]))
        else:
            kept[real] = path
    return list(kept.values()), duplicates


def read_inputs(inputs: Iterable[str | Path]) -> Inputs:
    """The image files named by files, folders (searched recursively, see `_search_folder`) and
    CSVs of paths (`_paths_from_csv`), each file once, with what was left out.

    Raises FileNotFoundError naming every path that does not exist (broken links and loops
    included), and ValueError for an empty path, a device, FIFO or socket, an empty folder or a
    CSV that cannot be used."""
    found = _Found()
    for item in inputs:
        if not str(item).strip():
            raise ValueError("an empty input path (an unset variable?): give image files, folders or CSVs")
        path = Path(item)
        kind = file_kind(path)
        if kind == FOLDER:
            before = (len(found.skipped), len(found.hidden), len(found.missing))
            images = _search_folder(path, found)
            if not images and len(found.missing) == before[2]:
                others = found.skipped[before[0] :]
                hidden = len(found.hidden) - before[1]
                raise ValueError(
                    f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder"
                    + (f"; {len(others)} other file(s): {listed(others)}" if others else "")
                    + (f"; {hidden} hidden or system file(s) or folder(s)" if hidden else "")
                )
            found.named.extend(images)
        elif kind == FILE and path.suffix.lower() == ".csv":
            found.csvs.append(str(path))
            found.named.extend(_paths_from_csv(path, found.missing))
        elif kind == FILE:
            found.named.append(str(path))
        elif is_special(kind):
            raise ValueError(f"{path}: is {kind}; inputs are image files, folders or CSVs")
        else:
            found.missing.append(str(path) if kind == MISSING else f"{path} ({kind})")
    if found.missing:
        raise FileNotFoundError(_not_found(found.missing))
    if not found.named:
        raise ValueError("no input images given")
    paths, duplicates = _once_each(found.named)
    return Inputs(found.named, paths, duplicates, found.csvs, found.skipped, found.hidden, found.relinked)
