"""Writing and fingerprinting files: deterministic JSON for DVC metrics, SHA-256 digests, CSV
tables checked for their columns, and folders replaced whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`: readers see the old
    content or the new, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks (archives of several GB included)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_table(path: Path, columns: Iterable[str], made_by: str) -> pd.DataFrame:
    """A CSV that must hold `columns`; a missing, unreadable or incomplete file is named with the
    stage that writes it (`made_by`), instead of a KeyError deep inside a stage."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (written by {made_by}: run `dvc repro`)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc}); it is written by {made_by}") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (a hand-edited or older file? it is "
            f"written by {made_by}: run it again)"
        )
    return frame


@contextmanager
def replaced_folder(target: Path) -> Iterator[Path]:
    """Build the new content of the folder `target` in `<target>.partial` (yielded); when the block
    succeeds it replaces `target` whole, the old folder being removed only once the new one is in
    place. When the block fails, `target` is left as it was and the partial folder is removed."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's leftover
    if staging.exists():
        raise PermissionError(f"{staging}: a leftover of an earlier run that cannot be removed; delete it")
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, target)


def swap_in(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing `target` is first renamed aside, then removed."""
    aside = target.with_name(f"{target.name}.old-{os.getpid()}")
    if target.exists():
        try:
            target.rename(aside)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise PermissionError(
                f"{target}: cannot replace it ({exc.strerror}); it is unchanged and nothing new was kept"
            ) from None
    try:
        staging.rename(target)
    except OSError as exc:
        if aside.exists():
            aside.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise PermissionError(f"{target}: cannot write it ({exc.strerror}); it is unchanged") from None
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)
        if aside.exists():
            print(
                f"warning: the new {target} is in place, but its previous version could not be deleted "
                f"(read-only?): it is in {aside}; delete it yourself",
                file=sys.stderr,
            )
