"""Turning raw BreakHis images into the ingested dataset: decode, check, hash and resize every
image in parallel on all cores, then set aside unusable images and pixel-identical duplicates.

Workers are threads: decoding, resizing, hashing and encoding run in OpenCV and hashlib with the
GIL released, so threads use every core without process start-up or pickling. Each worker writes
its resized image straight to disk and returns a small summary, and only a few images per worker
are in flight, so memory does not grow with the number of images.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from breakhis.data.dataset import ImageRecord
from breakhis.data.images import (
    BREAKHIS_ASPECT,
    ImageError,
    cover_and_crop,
    load_rgb,
    pixel_hash,
    size_problem,
    write_rgb,
)
from breakhis.data.parallel import map_in_threads
from breakhis.data.stain import StainNormalization, normalize_stain
from breakhis.pipeline.stage import SHOWN_LINES, listed_lines

MANIFEST_COLUMNS = [
    "filename",
    "label",
    "target",
    "subtype",
    "patient",
    "patient_group",
    "magnification",
    "original_height",
    "original_width",
    "pixel_hash",
    "source",
    "stain",
]
DUPLICATE_COLUMNS = ["filename", "patient", "duplicate_of", "duplicate_of_patient", "pixel_hash", "source"]
REJECTED_COLUMNS = ["filename", "patient", "reason", "source"]


@dataclass(frozen=True)
class Resizing:
    """How every image is checked and brought to one size (the same for every source)."""

    size: tuple[int, int]  # (height, width): ingest.image_size
    expected_aspect: float = BREAKHIS_ASPECT  # width / height of the source's images
    png_compression: int = 0
    stain_normalization: StainNormalization = "none"  # applied after resizing (breakhis/data/stain.py)


@dataclass(frozen=True)
class Processed:
    record: ImageRecord
    pixel_hash: str = ""
    original_height: int = 0
    original_width: int = 0
    error: str = ""  # why the image cannot be used ('' when it can)
    stain: str = "none"  # `normalized`, `none`, or why normalisation kept it as it is


@dataclass(frozen=True)
class Ingested:
    """The kept images, the duplicates set aside (each with its kept twin) and the rejected images."""

    manifest: pd.DataFrame
    duplicates: pd.DataFrame
    rejected: pd.DataFrame


def process_image(record: ImageRecord, out_dir: Path, resizing: Resizing) -> Processed:
    """Decode and check one image; if usable, write it resized to out_dir and return its pixel hash."""
    try:
        image = load_rgb(record.source)
    except ImageError as exc:
        return Processed(record, error=str(exc))
    height, width = image.shape[:2]
    problem = size_problem(image.shape, resizing.size, resizing.expected_aspect)
    if problem:
        return Processed(record, original_height=height, original_width=width, error=problem)
    resized = cover_and_crop(image, resizing.size)
    stain = "none"
    if resizing.stain_normalization != "none":
        normalized = normalize_stain(resized, resizing.stain_normalization)
        resized, stain = normalized.image, normalized.problem or "normalized"
    write_rgb(out_dir / record.filename, resized, resizing.png_compression)
    return Processed(record, pixel_hash(image), height, width, stain=stain)


def process_images(
    records: Sequence[ImageRecord], out_dir: Path, resizing: Resizing, workers: int
) -> Iterator[Processed]:
    """Decode, check, hash and resize each record into out_dir, in order, on `workers` threads."""
    out_dir.mkdir(parents=True, exist_ok=True)
    task = partial(process_image, out_dir=out_dir, resizing=resizing)
    return map_in_threads(task, records, workers=workers, desc="ingest")


def relative_source(source: str, root: Path) -> str:
    """The raw file's path inside data.path (inside the archive for archives), POSIX style."""
    prefix = os.path.join(root, "")
    if source.startswith(prefix):
        return source[len(prefix) :].replace(os.sep, "/")
    return Path(source).relative_to(root).as_posix()


def sort_out(processed: Sequence[Processed], root: Path) -> Ingested:
    """Split processed images into kept, duplicate and rejected ones.

    Images come in file-name order, so the kept twin of a duplicate pair is always the same one
    (`SOB_M_DC-14-13412-...` is kept, `SOB_M_LC-14-13412-...` listed as its duplicate). Twins
    labelled benign and malignant are all rejected: one of the labels is wrong, and file order
    must not decide which class their pixels teach.
    """
    rows, duplicates, rejected = [], [], []
    kept: dict[str, ImageRecord] = {}
    twins: dict[str, list[ImageRecord]] = {}
    for item in processed:
        if not item.error:
            twins.setdefault(item.pixel_hash, []).append(item.record)
    for item in processed:
        record, source = item.record, relative_source(item.record.source, root)
        if item.error:
            rejected.append([record.filename, record.patient, item.error, source])
            continue
        disagreeing = [twin for twin in twins[item.pixel_hash] if twin.label != record.label]
        if disagreeing:
            others = ", ".join(f"{twin.filename} ({twin.label})" for twin in disagreeing)
            reason = f"labelled {record.label}, but its pixels are identical to {others}: one label is wrong"
            rejected.append([record.filename, record.patient, reason, source])
            continue
        twin = kept.setdefault(item.pixel_hash, record)
        if twin is not record:
            duplicates.append(
                [record.filename, record.patient, twin.filename, twin.patient, item.pixel_hash, source]
            )
            continue
        rows.append(
            {
                **record.as_row(),
                "target": record.target,
                "pixel_hash": item.pixel_hash,
                "original_height": item.original_height,
                "original_width": item.original_width,
                "source": source,
                "stain": item.stain,
            }
        )
    return Ingested(
        manifest=pd.DataFrame(rows, columns=MANIFEST_COLUMNS),
        duplicates=pd.DataFrame(duplicates, columns=DUPLICATE_COLUMNS),
        rejected=pd.DataFrame(rejected, columns=REJECTED_COLUMNS),
    )


def ingest_images(
    records: Sequence[ImageRecord], root: Path, images_dir: Path, resizing: Resizing, workers: int
) -> Ingested:
    """Process every record into images_dir; only kept images stay there."""
    result = sort_out(list(process_images(records, images_dir, resizing, workers)), root)
    for filename in [*result.duplicates["filename"], *result.rejected["filename"]]:
        (images_dir / filename).unlink(missing_ok=True)  # a rejected image was written only if readable
    return result


def rejection_report(rejected: pd.DataFrame, root: Path) -> str:
    """All rejected images with their reasons, as one message (the first SHOWN_LINES in full)."""
    lines = [f"{root / str(row.source)}: {row.reason}" for row in rejected.itertuples()]
    where = " (ingest.on_error=skip lists them all in rejected.csv)" if len(lines) > SHOWN_LINES else ""
    return f"{len(rejected)} image(s) cannot be used:\n  " + listed_lines(lines) + where


def summarise(
    ingested: Ingested, files: int, ignored: int = 0, other_magnifications: int = 0
) -> dict[str, object]:
    """Counts for metrics/ingest.json."""
    manifest = ingested.manifest
    sizes = manifest.groupby(["original_width", "original_height"]).size()
    return {
        "files": files,
        "images": len(manifest),
        "duplicates": len(ingested.duplicates),
        "rejected": len(ingested.rejected),
        "ignored_files": ignored,
        "other_magnifications": other_magnifications,
        "patients": int(manifest["patient"].nunique()),
        "patient_groups": int(manifest["patient_group"].nunique()),
        "subtypes": int(manifest["subtype"].nunique()),
        "by_class": {k: int(v) for k, v in manifest["label"].value_counts().sort_index().items()},
        "patients_by_class": {k: int(v) for k, v in manifest.groupby("label")["patient"].nunique().items()},
        "patient_groups_by_class": {
            k: int(v) for k, v in manifest.groupby("label")["patient_group"].nunique().items()
        },
        "by_magnification": {
            f"{k}X": int(v) for k, v in manifest["magnification"].value_counts().sort_index().items()
        },
        "stain_kept_as_is": int(manifest["stain"].str.startswith("kept as is").sum()),
        "original_sizes": {f"{w}x{h}": int(n) for (w, h), n in zip(sizes.index, sizes, strict=True)},
    }
