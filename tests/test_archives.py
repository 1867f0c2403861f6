"""Safe extraction: hostile tar and zip members are refused by name, all of them in one error,
and nothing of a refused or broken archive is kept."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from breakhis.data.archives import ArchiveError, extract, extracted, unpacked, unsafe_member_reason
from tests.raw_data import tar_member


def make_tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tar_member("ok/fine.txt"), io.BytesIO(b"x"))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x") if member.isreg() else None)
    return path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x.png", "leaves the extraction folder"),
        ("a/b/../../../x.png", "leaves the extraction folder"),
        ("..\\x.png", "leaves the extraction folder"),
        ("/etc/passwd", "absolute path"),
        ("\\\\server\\share", "absolute path"),
        ("C:/Windows/x", "absolute path"),
        ("BreaKHis_v1/histology_slides/x.png", ""),
        ("a/..b/c..", ""),
    ],
)
def test_member_paths(name: str, reason: str) -> None:
    assert (reason in unsafe_member_reason(name)) and (bool(reason) == bool(unsafe_member_reason(name)))


def test_hostile_tar_members_are_all_named_and_nothing_is_kept(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "bad.tar.gz",
        [
            tar_member("../../escape.txt"),
            tar_member("/abs.txt"),
            tar_member("ok/link", tarfile.SYMTYPE, "../../etc/passwd"),
            tar_member("ok/hard", tarfile.LNKTYPE, "ok/fine.txt"),
            tar_member("ok/tty", tarfile.CHRTYPE),
            tar_member("ok/disk", tarfile.BLKTYPE),
            tar_member("ok/pipe", tarfile.FIFOTYPE),
        ],
    )
    target = tmp_path / "out"
    with pytest.raises(ArchiveError, match="7 unsafe member") as error:
        extract(archive, target)
    message = str(error.value)
    for expected in (
        "../../escape.txt: path leaves",
        "/abs.txt: absolute path",
        "ok/link: symbolic link to '../../etc/passwd'",
        "ok/hard: hard link to 'ok/fine.txt'",
        "ok/tty: device or FIFO",
        "ok/disk: device or FIFO",
        "ok/pipe: device or FIFO",
    ):
        assert expected in message
    assert str(archive) in message
    assert not target.exists()
    assert not (tmp_path / "escape.txt").exists()


def test_hostile_zip_members_are_all_named(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ok/fine.txt", "x")
        bundle.writestr("../escape.txt", "x")
        bundle.writestr("/abs.txt", "x")
        link = zipfile.ZipInfo("ok/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "/etc/passwd")
        fifo = zipfile.ZipInfo("ok/pipe")
        fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
        bundle.writestr(fifo, "")
    with pytest.raises(ArchiveError, match="4 unsafe member") as error:
        extract(archive, tmp_path / "out")
    message = str(error.value)
    for expected in (
        "../escape.txt: path leaves",
        "/abs.txt: absolute path",
        "ok/link: symbolic link",
        "ok/pipe: device",
    ):
        assert expected in message
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_a_truncated_archive_is_named(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "f.bin").write_bytes(random.Random(0).randbytes(100_000))  # barely compresses
    archive = tmp_path / f"data{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.write(source / "d" / "f.bin", "d/f.bin")
    else:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(source, arcname="src")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match=f"{archive}: not a readable archive"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extractions_are_cached_by_content(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", [])
    cache = tmp_path / "cache"
    folder = extracted(archive, cache)
    assert (folder / "ok" / "fine.txt").read_bytes() == b"x"
    assert extracted(archive, cache) == folder
    (cache / "a.tar.gz-0123456789abcdef.partial").mkdir()  # an interrupted run of other content
    make_tar(archive, [tar_member("ok/more.txt")])
    newer = extracted(archive, cache)
    assert newer != folder and (newer / "ok" / "more.txt").exists()
    assert [p.name for p in cache.iterdir()] == [newer.name]


def test_unpacked_passes_folders_through_and_refuses_other_files(tmp_path: Path) -> None:
    assert unpacked(tmp_path) == tmp_path
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(ArchiveError, match="neither a folder nor an archive"):
        unpacked(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        unpacked(tmp_path / "missing.zip")
