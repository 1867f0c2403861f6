"""Stage `ingest`: bring a raw BreakHis tree (or the embedded synthetic one) into the pipeline.

Writes data/ingested/{images/, manifest.csv, duplicates.csv} and metrics/ingest.json. Output is
built in a staging folder and swapped in only when every image is good, so a failed run loses
nothing that was already there.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from stages.dataset import scan_images
from stages.ingestion import build_manifest, process_images, summarise
from stages.parallel import worker_count
from stages.params import Params, load_params
from stages.runner import run_stage, write_json
from stages.synthetic import write_synthetic_breakhis

OUT_DIR = Path("data/ingested")
METRICS_FILE = Path("metrics/ingest.json")


def ingest(params: Params, source: Path) -> dict[str, object]:
    records = scan_images(source, params.data.magnifications)
    staging = OUT_DIR.with_name(OUT_DIR.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    images_dir = staging / "images"
    processed = list(
        process_images(records, images_dir, params.ingest.image_size, worker_count(params.ingest.workers))
    )
    errors = [item.error for item in processed if item.error]
    if errors:
        shutil.rmtree(staging)
        raise ValueError(f"{len(errors)} image(s) cannot be used:\n  " + "\n  ".join(errors))

    manifest, duplicates = build_manifest(processed)
    for filename in duplicates["filename"]:
        (images_dir / filename).unlink()
    manifest.insert(0, "path", [str(OUT_DIR / "images" / name) for name in manifest["filename"]])
    manifest.to_csv(staging / "manifest.csv", index=False)
    duplicates.to_csv(staging / "duplicates.csv", index=False)
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    staging.rename(OUT_DIR)
    return summarise(manifest, files=len(records), duplicates=len(duplicates), rejected=0)


def main() -> None:
    params = load_params()
    data = params.data
    if data.source == "synthetic":
        with tempfile.TemporaryDirectory(prefix="synthetic-breakhis-") as tmp:
            synthetic = data.synthetic
            tree = write_synthetic_breakhis(
                Path(tmp),
                seed=params.seed,
                benign_patients=synthetic.benign_patients,
                malignant_patients=synthetic.malignant_patients,
                images_per_magnification=synthetic.images_per_magnification,
                magnifications=data.magnifications,
                image_size=synthetic.image_size,
                atypical_fraction=synthetic.atypical_fraction,
            )
            summary = ingest(params, tree)
    else:
        summary = ingest(params, Path(data.path or ""))
    write_json(METRICS_FILE, {"source": data.source, **summary})
    print(
        f"ingest: {summary['images']} images of {summary['patients']} patients -> {OUT_DIR}", file=sys.stderr
    )


if __name__ == "__main__":
    run_stage(main)
