"""Raw datasets for the ingest tests, built from copies of the shared BreakHis sample: the official
tree, a .tar.gz of it, a Kaggle-shaped zip with Folds.csv, and broken variants of each."""

from __future__ import annotations

import io
import shutil
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np

DUPLICATE = "SOB_M_LC-14-13412-100-026.png"
DUPLICATE_OF = "SOB_M_DC-14-13412-100-026.png"
SHORT_IMAGE = "SOB_M_PC-14-12465-100-001.png"  # 700x456
SAMPLE_GROUPS = {
    "14-22549",
    "14-14134",
    "14-22704",
    "14-16184",
    "14-13412",
    "14-3909",
    "14-18842",
    "14-12465",
    "14-15704",
}


def copy_tree(sample_tree: Path, parent: Path) -> Path:
    """A writable copy of the sample's BreaKHis_v1 folder under `parent`; returns the copy."""
    return Path(shutil.copytree(sample_tree, parent / "BreaKHis_v1"))


def image_path(tree: Path, filename: str) -> Path:
    """Where `filename` sits in a BreaKHis_v1 tree."""
    return next(tree.rglob(filename))


def make_tar_gz(tree: Path, archive: Path, extra: dict[str, tarfile.TarInfo] | None = None) -> Path:
    """`tree` as `BreaKHis_v1/...` in a .tar.gz, plus any extra (possibly hostile) members."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="BreaKHis_v1")
        for info in (extra or {}).values():
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return archive


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def folds_rows(tree: Path) -> list[str]:
    """Folds.csv lines for every image of `tree`: 5 folds, train/test alternating by image."""
    lines = ["fold,mag,grp,filename"]
    files = sorted(tree.rglob("*.png"), key=lambda p: p.name)
    for fold in range(1, 6):
        for index, file in enumerate(files):
            group = "test" if (index + fold) % 3 == 0 else "train"
            relative = file.relative_to(tree.parent).as_posix()
            mag = file.parent.name.removesuffix("X")
            lines.append(f"{fold},{mag},{group},{relative}")
    return lines


def expected_fold(tree: Path, filename: str, fold: int) -> str:
    names = sorted(p.name for p in tree.rglob("*.png"))
    return "test" if (names.index(filename) + fold) % 3 == 0 else "train"


def make_kaggle_zip(tree: Path, archive: Path, folds: list[str] | None) -> Path:
    """The Kaggle layout: BreaKHis_v1/BreaKHis_v1/histology_slides/... and Folds.csv at the top."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in sorted(tree.rglob("*")):
            bundle.write(file, "BreaKHis_v1/" + file.relative_to(tree.parent).as_posix())
        if folds is not None:
            bundle.writestr("Folds.csv", "\n".join(folds) + "\n")
    return archive


def write_png(path: Path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), image)


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def write_png_bomb(path: Path, width: int = 20000, height: int = 13143) -> Path:
    """A valid PNG of width x height black pixels: under a megabyte on disk, width x height x 3
    bytes decoded (the defaults: 766 KB that decode to 789 MB, as in the issue)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width * 3 + 1)  # filter byte + RGB
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path
