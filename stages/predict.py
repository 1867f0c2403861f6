"""breakhis-predict: run the trained models on new images and write a CSV of probabilities.

    breakhis-predict INPUT... [--model custom|vgg19|resnet50|ensemble] [--out predictions.csv]
                     [--threshold T] [--models-dir models] [--explain DIR]

INPUT: image files, folders (searched recursively for images) or CSV files with a `path` column.
Images get the training preprocessing (see stages.prediction). BreakHis-named files (by name alone,
in or out of the official layout) are also summarised per patient. Not a DVC stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.gradcam import GradCam, heatmaps, overlay
from stages.images import write_rgb
from stages.models import MODEL_NAMES
from stages.params import PARAMS_FILE, Params, load_params
from stages.prediction import (
    ENSEMBLE,
    aggregate_by_patient,
    check_images,
    collect_inputs,
    ensemble_members,
    load_for_model,
    load_model,
    model_file,
    name_info,
    predict_batch,
)
from stages.runner import run_stage

CLASS_NAMES = ("benign", "malignant")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="breakhis-predict",
        description="Classify histopathology images as benign or malignant with the trained models "
        "(research use only, not for diagnosis).",
    )
    parser.add_argument(
        "inputs", nargs="+", help="image files, folders of images, or CSVs with a 'path' column"
    )
    parser.add_argument(
        "--model",
        choices=(*MODEL_NAMES, ENSEMBLE),
        default=ENSEMBLE,
        help="one model, or the ensemble: the mean probability of the models present (default)",
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="folder of <model>.keras")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="per-image CSV")
    parser.add_argument(
        "--patients-out",
        type=Path,
        default=None,
        help="per-patient CSV for BreakHis-named files (default: <out>_patients.csv)",
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="malignant if probability >= this (default: params)"
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help=f"params file for evaluate.threshold and ingest.image_size (default: {PARAMS_FILE})",
    )
    parser.add_argument(
        "--explain", type=Path, default=None, metavar="DIR", help="write Grad-CAM overlays here"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def read_params(path: Path | None) -> Params:
    """The run's params; without a params.yaml in the current folder, the defaults (with a warning)."""
    if path is None and not PARAMS_FILE.exists():
        print(
            f"warning: no {PARAMS_FILE} here; using the default threshold and ingest.image_size "
            "(pass --params to use the training run's)",
            file=sys.stderr,
        )
        return Params()
    return load_params(path or PARAMS_FILE)


def explanation_names(paths: Sequence[str]) -> list[str]:
    """File stems for overlays, made unique (`stem-<n>`) where two inputs share a stem."""
    stems = [Path(p).stem for p in paths]
    counts = Counter(stems)
    return [stem if counts[stem] == 1 else f"{stem}-{index}" for index, stem in enumerate(stems)]


def predict_command(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    params = read_params(args.params)
    threshold = params.evaluate.threshold if args.threshold is None else args.threshold
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"--threshold {threshold}: must be between 0 and 1")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: must be at least 1")
    size = params.ingest.image_size

    # everything that can be wrong with the inputs is found before any model is loaded
    names, missing = ensemble_members(args.model, args.models_dir)
    paths = collect_inputs(args.inputs)
    workers = min(8, os.cpu_count() or 1)
    check_images(paths, size, workers)
    if missing:
        print(
            f"warning: {', '.join(f'{n}.keras' for n in missing)} not in {args.models_dir}; "
            f"the ensemble is the mean of {', '.join(names)} only",
            file=sys.stderr,
        )

    models = {name: load_model(model_file(args.models_dir, name)) for name in names}
    cams = {name: GradCam(model) for name, model in models.items()} if args.explain else {}
    if args.explain:
        args.explain.mkdir(parents=True, exist_ok=True)
    stems = explanation_names(paths)
    probabilities: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(paths), desc="predict", unit="img", disable=args.quiet) as progress,
    ):
        for start in range(0, len(paths), args.batch_size):
            batch = paths[start : start + args.batch_size]
            images = np.stack(list(pool.map(lambda p: load_for_model(p, size), batch)))
            for name, probs in predict_batch(models, images).items():
                probabilities[name].append(probs)
            for name, cam in cams.items():
                maps, _ = heatmaps(cam, name, images, threshold)
                for stem, image, heatmap in zip(stems[start : start + len(batch)], images, maps, strict=True):
                    write_rgb(args.explain / f"{stem}__{name}.png", overlay(image, heatmap))
            progress.update(len(batch))

    table = pd.DataFrame({"path": paths})
    for name in names:
        table[f"{name}_probability"] = np.concatenate(probabilities[name]).round(6)
    deciding = f"{names[0]}_probability"
    if args.model == ENSEMBLE:
        table["ensemble_probability"] = table[[f"{n}_probability" for n in names]].mean(axis=1).round(6)
        deciding = "ensemble_probability"
    table["predicted_class"] = np.where(table[deciding] >= threshold, CLASS_NAMES[1], CLASS_NAMES[0])
    table["threshold"] = threshold
    info = pd.DataFrame([asdict(name_info(p)) for p in paths])
    table = pd.concat([table, info], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    malignant = int((table["predicted_class"] == CLASS_NAMES[1]).sum())
    message = f"wrote {args.out}: {len(table)} image(s), {malignant} malignant at threshold {threshold}"
    if (table["patient"] != "").any():
        patients_out = args.patients_out or args.out.with_name(f"{args.out.stem}_patients.csv")
        per_patient = aggregate_by_patient(table, deciding, threshold)
        per_patient.to_csv(patients_out, index=False)
        message += f"; {len(per_patient)} BreakHis patient(s) in {patients_out}"
    if args.explain:
        message += f"; Grad-CAM overlays in {args.explain}"
    print(message, file=sys.stderr)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`breakhis-predict`); bad input exits 1 with one readable message."""

    def run() -> None:
        predict_command(argv)

    run_stage(run)


if __name__ == "__main__":
    main()
