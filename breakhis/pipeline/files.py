"""Writing and fingerprinting files: deterministic JSON for DVC metrics, SHA-256 digests, CSV
tables checked for their columns, and folders replaced whole or not at all, by one run at a time.

Locks: a stage that replaces a folder holds an exclusive `flock` on `<folder>.lock` beside it
(`output_lock`) for as long as it works on it, so a second run started meanwhile stops at once
with a message naming the run that holds it, instead of deleting the first run's `.partial`
folder. The kernel releases the lock when its process ends, however it ends (even SIGKILL), so a
lock file left by a killed run is no obstacle: the next run takes it over. The lock file itself
stays (it is empty but for the holder's process id); deleting it would let two runs lock two
different files of the same name.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from breakhis.pipeline.paths import RUNS_DIR

# ---- what is at a path, and whether an output can be written there -----------------------------

FILE, FOLDER, MISSING = "file", "folder", "missing"
LOOP = "a symbolic link loop"
SPECIAL_FILES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def file_kind(path: Path | str) -> str:
    """What is at `path`, symbolic links followed: FILE, FOLDER, MISSING, LOOP, one of
    SPECIAL_FILES' values, 'a broken symbolic link to <target>', 'unreadable (<reason>)' or 'an
    impossible path (...)'. Never raises."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LOOP
        if os.path.islink(path):
            return f"a broken symbolic link to {os.readlink(path)}"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return MISSING
        return f"unreadable ({exc.strerror})"
    except ValueError:  # os.stat refuses a NUL character
        return "an impossible path (it holds a NUL character)"
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return FOLDER
    return SPECIAL_FILES.get(stat.S_IFMT(mode), "not a regular file")


def is_special(kind: str) -> bool:
    """A device, FIFO or socket: never read as an image or CSV (a FIFO would block the read)."""
    return kind in SPECIAL_FILES.values() or kind == "not a regular file"


def check_output(path: Path, option: str, example: str = "predictions.csv") -> Path:
    """The file to write for `option`, checked before any model runs: a regular file or none yet,
    in a folder that can be written. A symbolic link is followed on purpose, as a shell's `>` does:
    its target (returned) is checked and replaced, the link kept; a dangling link makes its target."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    through = f" (the symbolic link's target, {target})" if target != path else ""
    kind = file_kind(target)
    if kind == LOOP:
        raise ValueError(f"{option} {path}: {LOOP}")
    if kind == FOLDER:
        raise ValueError(
            f"{option} {path}: is a folder{through}; give a file name (for example {path / example})"
        )
    if is_special(kind):
        raise ValueError(f"{option} {path}: is {kind}, not a regular file{through}; give a file name")
    folder = next((p for p in target.absolute().parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        why = "Read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else "Permission denied"
        raise PermissionError(f"{option} {path}: not writable ({why})")
    return target


def write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`: readers see the old
    content or the new, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        raise named(exc, path) from None


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


class OutputLockedError(PermissionError):
    """Another run is writing the same output now."""


UNLOCKABLE = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}  # file systems without flock (some NFS)
_held: Counter[Path] = Counter()  # output folders this process has locked, with the nesting depth


def lock_path(target: Path) -> Path:
    """The lock file of the output folder `target`: `<target>.lock` beside it."""
    return target.with_name(target.name + ".lock")


@contextmanager
def output_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive lock on the output folder `target` for the block; OutputLockedError at
    once (no waiting) when another process holds it. Nested use in one process is allowed: a
    stage can lock its output for its whole run and `replaced_folder` lock it again inside."""
    key = Path(os.path.abspath(target))
    if _held[key]:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    path = lock_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise PermissionError(f"{path}: cannot create the lock file of {target} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in UNLOCKABLE:
                print(
                    f"warning: {path}: this file system cannot lock files ({exc.strerror}); do not start "
                    f"a second run writing {target} until this one ends",
                    file=sys.stderr,
                )
            elif exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = os.pread(handle, 200, 0).decode("ascii", "replace").strip()
                shown = holder if holder.isprintable() and holder else "another process"
                raise OutputLockedError(
                    f"{target}: another run is writing it now ({shown}, holding {path}); wait for it "
                    "to finish or stop it, then run again. Nothing was changed."
                ) from None
            else:
                raise
        try:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        except OSError as exc:  # a full disk
            raise named(exc, path) from None
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
            os.ftruncate(handle, 0)
    finally:
        os.close(handle)  # closing releases the lock (and the kernel releases it if the process dies)


@contextmanager
def replaced_folder(target: Path) -> Iterator[Path]:
    """Build the new content of the folder `target` in `<target>.partial` (yielded); when the block
    succeeds it replaces `target` whole, the old folder being removed only once the new one is in
    place. When the block fails (an exception, Ctrl-C, or SIGTERM through `run_stage`), `target`
    is left as it was and the partial folder is removed. The output's lock (`output_lock`) is held
    throughout, so a second run at the same time fails at once and leaves this one alone."""
    with output_lock(target):
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)  # a killed run's leftover (the lock says none runs now)
        if staging.exists():
            raise PermissionError(
                f"{staging}: a leftover of an earlier run that cannot be removed; delete it"
            )
        staging.mkdir(parents=True)
        try:
            yield staging
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise named(exc, target) from None
        swap_in(staging, target)


def named(exc: BaseException, *targets: Path) -> BaseException:
    """`exc`, or for an OSError that names no file (a full disk's ENOSPC comes from write() or
    close(), which Python reports without one) the same error naming the output being written."""
    if not isinstance(exc, OSError) or exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, ", ".join(str(target) for target in targets))


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


STARTED = ".started"  # in an output unit's folder of earlier outputs: every target has been moved aside


@contextmanager
def output_unit(name: str, targets: Sequence[Path], state: Path = RUNS_DIR) -> Iterator[None]:
    """The outputs `targets` (files or folders, relative to the project) of one run, replaced as one
    unit: the earlier ones are moved aside into `<state>/<name>/` when the block starts and deleted
    when it succeeds. When the block fails (an exception, Ctrl-C, or SIGTERM through `run_stage`),
    whatever it wrote to the targets is removed and the earlier outputs are put back, so the targets
    hold all of the earlier run or all of this one, never a mix (a training record beside another
    run's model). A run killed outright (SIGKILL, out of memory) leaves its earlier outputs in
    `<state>/<name>/`: the next run of the unit puts them back before it starts. The unit's lock
    (`<state>/<name>.lock`, `output_lock`) is held throughout: a second run stops at once."""
    absolute = [str(target) for target in targets if Path(target).is_absolute()]
    if absolute:
        raise ValueError(
            f"output_unit {name}: targets must be relative to the project: {', '.join(absolute)}"
        )
    aside = state / name
    with output_lock(aside):
        _put_back(aside, targets)  # a killed run's leftovers
        try:
            aside.mkdir(parents=True)
            for target in targets:
                if os.path.lexists(target):
                    (aside / target).parent.mkdir(parents=True, exist_ok=True)
                    os.rename(target, aside / target)
            (aside / STARTED).touch()  # from here on, what is at the targets is this run's
            yield
        except BaseException as exc:
            _put_back(aside, targets)
            raise named(exc, *targets) from None
        shutil.rmtree(aside)


def _put_back(aside: Path, targets: Sequence[Path]) -> None:
    """Undo a unit that did not finish: remove what it wrote to `targets` and move the earlier
    outputs kept in `aside` back. Nothing to undo when `aside` does not exist; before the unit
    started (no STARTED mark), only the targets already moved aside are put back."""
    if not aside.exists():
        return
    started = (aside / STARTED).exists()
    for target in targets:
        kept = aside / target
        if not (started or os.path.lexists(kept)):
            continue  # still the earlier output: the unit stopped before moving it
        if Path(target).is_dir() and not Path(target).is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)
        if os.path.lexists(kept):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.rename(kept, target)
    shutil.rmtree(aside)
