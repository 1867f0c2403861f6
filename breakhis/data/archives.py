"""Dataset archives (`.tar.gz`, `.tgz`, `.tar`, `.zip`): safe extraction into a cache keyed by content.

Safety: every member is checked before it is written. Members whose path is absolute or climbs
out of the target (`..`), links (symbolic or hard), device or FIFO entries and a file listed twice
(the second copy would silently replace the first) are refused; all of them are named in one
error, and nothing of a refused archive is kept. The expansion is capped, in bytes and in members:
members declaring more than MAX_EXPANSION times the archive's size, or MAX_EXTRACTED_BYTES in
all, or more than MAX_MEMBERS members (BreakHis has 7,909 images in some 8,000 folders; a tar of
millions of empty files is a bomb of another kind: inodes, and memory for their headers) stop the
extraction before the member that crosses the cap is written, and what was extracted is removed.
A zip's member count is read from its end record, before its directory is loaded.

Windows-style separators: some Windows zip tools write `BreaKHis_v1\\histology_slides\\...`
(backslashes, against the zip specification). A backslash in a zip member's name is read as a
folder separator, with the same checks (`..\\x` and `\\x` are refused), so such a zip ingests
as any other; nothing else in a BreakHis name can hold a backslash.

Caching: an archive is extracted once into `<cache>/<archive name>-<sha256 prefix>/` and reused
while its content is unchanged, so an ingest re-run for another reason (a changed param or
library file) does not extract 4 GB again. A changed archive gets a new folder and the old one is
removed; an interrupted extraction leaves only a `.partial` folder that the next run deletes.
"""

from __future__ import annotations

import re
import shutil
import stat
import sys
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from breakhis.pipeline.files import file_digest
from breakhis.pipeline.paths import EXTRACTED_ARCHIVES
from breakhis.pipeline.stage import listed_lines

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
MAX_EXPANSION = 100  # extracted bytes per archive byte; BreakHis's PNGs barely compress (about 1x)
MAX_EXTRACTED_BYTES = 64 * 2**30  # the full BreakHis is about 4 GB
MAX_MEMBERS = 100_000  # files and folders; BreakHis has about 16,000 (7,909 images)
MAX_ZIP_DIRECTORY_BYTES = MAX_MEMBERS * 1024  # a zip's central directory, loaded whole by zipfile
# tarfile's "data" filter (Python 3.11.4+) is a second line of defence behind the checks below
DATA_FILTER: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class ArchiveError(ValueError):
    """An archive that cannot be read, or holds members that would be unsafe to extract."""


def shown_name(name: str) -> str:
    """A member's name as an error shows it: control and non-ASCII characters escaped."""
    return name if name.isascii() and name.isprintable() else name.encode("unicode_escape").decode("ascii")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unsafe_member_reason(name: str) -> str:
    """Why a member path is unsafe to extract ('' when it is safe)."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "path leaves the extraction folder ('..')"
    return ""


def _tar_member_reason(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link to '{member.linkname}'"
    if member.islnk():
        return f"hard link to '{member.linkname}'"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or FIFO"
    if not (member.isreg() or member.isdir()):
        return f"unsupported member type {member.type!r}"
    return unsafe_member_reason(member.name)


def _zip_member_reason(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "device, FIFO or socket"
    if info.flag_bits & 0x1:
        return "encrypted"
    return unsafe_member_reason(info.filename)


def expansion_limit(archive: Path) -> int:
    return min(MAX_EXTRACTED_BYTES, MAX_EXPANSION * max(archive.stat().st_size, 1))


def _too_big(archive: Path, declared: int, limit: int) -> ArchiveError:
    return ArchiveError(
        f"{archive}: its members expand to more than {declared:,} bytes, over the cap of {limit:,} "
        f"({MAX_EXPANSION}x its {archive.stat().st_size:,} bytes, at most {MAX_EXTRACTED_BYTES:,}): an "
        "archive bomb, or not a BreakHis archive; nothing of it was kept"
    )


def _too_many(archive: Path, members: int | str) -> ArchiveError:
    return ArchiveError(
        f"{archive}: holds {members} members, over the cap of {MAX_MEMBERS:,} (BreakHis has 7,909 "
        "images in about 16,000 files and folders): an archive bomb, or not a BreakHis archive; "
        "nothing of it was kept"
    )


def _refuse(archive: Path, problems: list[str]) -> ArchiveError:
    shown = listed_lines(problems)
    return ArchiveError(f"{archive}: refusing to extract {len(problems)} unsafe member(s):\n  " + shown)


def _member_key(name: str) -> str:
    """A member's path as extraction resolves it: `a//b/./c/` and `a/b/c` land on one file."""
    return "/".join(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))


def _extract_tar(archive: Path, target: Path) -> None:
    """One streaming pass: extract while every member so far is safe, keep checking after that."""
    problems: list[str] = []
    limit, declared, count, files = expansion_limit(archive), 0, 0, set()
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            count += 1
            if count > MAX_MEMBERS:
                raise _too_many(archive, f"more than {MAX_MEMBERS:,}")
            declared += member.size
            if declared > limit:
                raise _too_big(archive, declared, limit)
            reason = _tar_member_reason(member)
            key = _member_key(member.name)
            if not reason and not member.isdir():
                reason = "listed twice (the second copy would replace the first)" if key in files else ""
                files.add(key)
            if reason:
                problems.append(f"{shown_name(member.name)}: {reason}")
            elif not problems:
                tar.extract(member, target, set_attrs=False, **DATA_FILTER)
    if problems:
        raise _refuse(archive, problems)


def _zip_directory(archive: Path) -> None:
    """Refuse a zip whose end record declares more members, or a larger directory, than the caps,
    before zipfile loads that directory into memory (one object per member)."""
    read_end = getattr(zipfile, "_EndRecData", None)  # private, but in zipfile since Python 2
    if read_end is None:
        return
    with archive.open("rb") as handle:
        end = read_end(handle)
    if end is None:
        return  # not a zip: ZipFile says so
    entries, size = end[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)], end[getattr(zipfile, "_ECD_SIZE", 5)]
    if entries > MAX_MEMBERS:
        raise _too_many(archive, f"{entries:,}")
    if size > MAX_ZIP_DIRECTORY_BYTES:
        raise _too_many(archive, f"a {size:,}-byte directory of")


def _extract_zip(archive: Path, target: Path) -> None:
    _zip_directory(archive)
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        if len(members) > MAX_MEMBERS:
            raise _too_many(archive, f"{len(members):,}")
        problems = [
            f"{shown_name(m.filename)}: {reason}" for m in members if (reason := _zip_member_reason(m))
        ]
        keys = Counter(
            _member_key(m.filename) for m in members if not m.filename.replace("\\", "/").endswith("/")
        )
        twice = sorted(key for key, times in keys.items() if times > 1)
        problems += [
            f"{shown_name(key)}: listed twice (the second copy would replace the first)" for key in twice
        ]
        if problems:
            raise _refuse(archive, problems)
        declared, limit = sum(member.file_size for member in members), expansion_limit(archive)
        if declared > limit:
            raise _too_big(archive, declared, limit)
        if any("\\" in member.filename for member in members):
            print(
                f"ingest: {archive} names its members with Windows-style '\\' separators; read as folders",
                file=sys.stderr,
            )
        for member in members:
            _write_zip_member(bundle, member, target)


def _write_zip_member(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    """Extract one checked member, a backslash read as a folder separator."""
    name = member.filename.replace("\\", "/")
    destination = target.joinpath(*_member_key(name).split("/"))
    if destination != target and target not in destination.parents:  # checked already; never written
        raise ArchiveError(f"{member.filename}: path leaves the extraction folder")
    if name.endswith("/"):
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with bundle.open(member) as source, destination.open("wb") as out:
        shutil.copyfileobj(source, out, 2**20)


def extract(archive: Path, target: Path) -> None:
    """Extract `archive` into the (new) folder `target`, refusing unsafe members; all or nothing."""
    target.mkdir(parents=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, target)
        else:
            _extract_tar(archive, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveError(f"{archive}: not a readable archive (truncated or corrupt?): {exc}") from exc
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveError(f"{archive}: extraction into {target} failed: {exc}") from exc
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _stale(cache: Path, archive: Path, keep: Path) -> Iterator[Path]:
    """Earlier extractions of an archive of the same name (other content), finished or not."""
    pattern = re.compile(re.escape(archive.name) + r"-[0-9a-f]{16}(\.partial)?")
    for folder in cache.iterdir():
        if folder != keep and folder.is_dir() and pattern.fullmatch(folder.name):
            yield folder


def extracted(archive: Path, cache: Path = EXTRACTED_ARCHIVES) -> Path:
    """The folder holding `archive`'s content: reused if this content was extracted before."""
    folder = cache / f"{archive.name}-{file_digest(archive)[:16]}"
    if folder.is_dir():
        print(f"ingest: {archive} unchanged, reusing its extraction in {folder}", file=sys.stderr)
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"ingest: extracting {archive} into {folder}", file=sys.stderr)
    extract(archive, partial)
    partial.rename(folder)
    for old in _stale(cache, archive, folder):
        shutil.rmtree(old, ignore_errors=True)
    return folder


def unpacked(path: Path, cache: Path = EXTRACTED_ARCHIVES) -> Path:
    """The folder to read a dataset from: `path` itself if it is a folder, else its extraction."""
    if not path.exists():
        raise FileNotFoundError(f"data.path '{path}' does not exist")
    if path.is_dir():
        return path
    if is_archive(path):
        return extracted(path, cache)
    raise ArchiveError(
        f"data.path '{path}' is neither a folder nor an archive ({', '.join(ARCHIVE_SUFFIXES)})"
    )
