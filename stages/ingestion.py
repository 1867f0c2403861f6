"""Turning raw BreakHis images into the ingested dataset: decode, check, hash and resize every
image in parallel on all cores, then drop pixel-identical duplicates.

Workers write resized images straight to disk and return only a small summary per image, so
memory does not grow with the number of images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from stages.dataset import ImageRecord
from stages.images import ImageError, cover_and_crop, pixel_hash, read_rgb, write_rgb
from stages.parallel import map_in_processes


@dataclass(frozen=True)
class Processed:
    record: ImageRecord
    pixel_hash: str = ""
    original_height: int = 0
    original_width: int = 0
    error: str = ""


def _process(record: ImageRecord, out_dir: Path, size: tuple[int, int]) -> Processed:
    try:
        image = read_rgb(record.source)
    except ImageError as exc:
        return Processed(record, error=str(exc))
    write_rgb(out_dir / record.filename, cover_and_crop(image, size))
    return Processed(record, pixel_hash(image), image.shape[0], image.shape[1])


def process_images(
    records: Sequence[ImageRecord], out_dir: Path, size: tuple[int, int], workers: int
) -> Iterator[Processed]:
    """Decode, check, hash and resize each record into out_dir, in order, on `workers` processes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    task = partial(_process, out_dir=out_dir, size=size)
    return map_in_processes(task, records, workers=workers, desc="ingest")


def build_manifest(processed: Sequence[Processed]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest of kept images and the list of duplicates (each with its kept twin).

    Images are in file-name order, so the kept twin of a duplicate pair is always the same one.
    """
    rows, duplicates, kept_by_hash = [], [], {}
    for item in processed:
        kept = kept_by_hash.setdefault(item.pixel_hash, item.record.filename)
        if kept != item.record.filename:
            duplicates.append(
                {"filename": item.record.filename, "patient": item.record.patient, "duplicate_of": kept}
            )
            continue
        row = item.record.as_row()
        row["target"] = item.record.target
        row.update(
            pixel_hash=item.pixel_hash,
            original_height=item.original_height,
            original_width=item.original_width,
        )
        rows.append(row)
    columns = [
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
    ]
    manifest = pd.DataFrame(rows, columns=columns)
    return manifest, pd.DataFrame(duplicates, columns=["filename", "patient", "duplicate_of"])


def summarise(manifest: pd.DataFrame, files: int, duplicates: int, rejected: int) -> dict[str, object]:
    return {
        "files": files,
        "images": len(manifest),
        "duplicates": duplicates,
        "rejected": rejected,
        "patients": int(manifest["patient"].nunique()),
        "patient_groups": int(manifest["patient_group"].nunique()),
        "subtypes": int(manifest["subtype"].nunique()),
        "by_class": {k: int(v) for k, v in manifest["label"].value_counts().sort_index().items()},
        "patients_by_class": {k: int(v) for k, v in manifest.groupby("label")["patient"].nunique().items()},
        "by_magnification": {
            f"{k}X": int(v) for k, v in manifest["magnification"].value_counts().sort_index().items()
        },
    }
