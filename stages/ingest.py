"""Stage `ingest`: bring a raw BreakHis dataset (or the embedded synthetic one) into the pipeline.

`data.path` may be a BreaKHis_v1 tree (or any parent of it), the Kaggle "breakhis" folder, or a
`.tar.gz` / `.zip` of either (extracted once into data/extracted/, see breakhis/data/archives.py).

Writes data/ingested/{images/, manifest.csv, duplicates.csv, rejected.csv} and metrics/ingest.json.
Output is built in data/ingested.partial and swapped in only when complete, so a failed run
loses nothing that was already there and leaves no partial folder (SIGTERM included). The
synthetic source is generated into data/ingested.synthetic.partial and removed after. The stage
holds data/ingested.lock while it runs: a second ingest in the same project stops at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from breakhis.data.archives import unpacked
from breakhis.data.dataset import scan_tree
from breakhis.data.folds import FOLD_COLUMNS, check_coverage, find_folds_file, fold_columns, read_folds
from breakhis.data.images import source_aspect
from breakhis.data.ingestion import Resizing, ingest_images, rejection_report, summarise
from breakhis.data.parallel import worker_count
from breakhis.data.synthetic import synthetic_breakhis
from breakhis.pipeline.cli import parse_no_options
from breakhis.pipeline.files import output_lock, replaced_folder, write_json
from breakhis.pipeline.params import Params
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import INGEST_METRICS, INGESTED
from breakhis.pipeline.stage import listed, run_stage

# the synthetic tree is generated here, beside the output, and removed after (see synthetic_breakhis)
SYNTHETIC_SOURCE = INGESTED.with_name(INGESTED.name + ".synthetic.partial")


class IngestError(ValueError):
    """Images that cannot be used, with ingest.on_error=fail (or none usable at all)."""


def ingest(params: Params, root: Path, resizing: Resizing, shown_as: Path | str) -> dict[str, object]:
    """Ingest the dataset under `root` into INGESTED; `shown_as` is how errors name data.path."""
    scan = scan_tree(root, params.data.magnifications, shown_as)
    folds = None
    if params.data.source == "kaggle":
        folds_file = find_folds_file(root, shown_as)
        folds = read_folds(folds_file)
        check_coverage(folds, scan.records, folds_file)

    workers = worker_count(params.ingest.workers)
    with replaced_folder(INGESTED) as staging:  # the previous output stays whole until this succeeds
        result = ingest_images(scan.records, root, staging / "images", resizing, workers)
        if len(result.rejected) and params.ingest.on_error == "fail":
            raise IngestError(
                rejection_report(result.rejected, root)
                + "\nNothing was written. Fix or remove them, or set ingest.on_error=skip to leave them out."
            )
        if result.manifest.empty:
            report = rejection_report(result.rejected, root)
            raise IngestError(f"data.path '{shown_as}' has no usable image. {report}")
        manifest = result.manifest
        manifest.insert(0, "path", [(INGESTED / "images" / name).as_posix() for name in manifest["filename"]])
        if folds is not None:
            manifest[list(FOLD_COLUMNS)] = fold_columns(manifest["filename"], folds)
        manifest.to_csv(staging / "manifest.csv", index=False)
        result.duplicates.to_csv(staging / "duplicates.csv", index=False)
        result.rejected.to_csv(staging / "rejected.csv", index=False)
    if scan.ignored:
        print(
            f"ingest: ignored {len(scan.ignored)} file(s) that are not images: {listed(scan.ignored)}",
            file=sys.stderr,
        )
    kept_as_is = manifest[manifest["stain"].str.startswith("kept as is")]
    if len(kept_as_is):
        print(
            f"ingest: stain normalisation kept {len(kept_as_is)} image(s) as they are (too little tissue "
            f"or no stable estimate; column `stain` of {INGESTED / 'manifest.csv'}): "
            + listed(list(kept_as_is["filename"])),
            file=sys.stderr,
        )
    if len(result.rejected):
        print(
            f"ingest: left out {len(result.rejected)} unusable image(s), see {INGESTED / 'rejected.csv'}",
            file=sys.stderr,
        )
    return summarise(result, len(scan.records), len(scan.ignored), scan.other_magnifications)


def main() -> None:
    params = load_params()
    data = params.data
    resizing = Resizing(
        params.ingest.image_size,
        source_aspect(data),
        params.ingest.png_compression,
        params.ingest.stain_normalization,
    )
    # one ingest at a time: a second one stops at once instead of deleting this one's folders
    with output_lock(INGESTED):
        if data.source == "synthetic":
            synthetic = data.synthetic
            with synthetic_breakhis(
                SYNTHETIC_SOURCE,
                seed=params.seed,
                benign_patients=synthetic.benign_patients,
                malignant_patients=synthetic.malignant_patients,
                images_per_magnification=synthetic.images_per_magnification,
                magnifications=data.magnifications,
                image_size=synthetic.image_size,
                atypical_fraction=synthetic.atypical_fraction,
            ) as root:
                summary = ingest(params, root, resizing, "(synthetic)")
        else:
            path = Path(data.path or "")
            summary = ingest(params, unpacked(path), resizing, path)
        write_json(INGEST_METRICS, {"source": data.source, **summary})
    print(
        f"ingest: {summary['images']} images of {summary['patients']} patients -> {INGESTED}", file=sys.stderr
    )


if __name__ == "__main__":
    parse_no_options("stages.ingest", __doc__)  # --help: usage, nothing read or written
    run_stage(main)
