"""breakhis-predict: run the trained models on new images and write a CSV of probabilities.

    breakhis-predict INPUT... [--model custom|vgg19|resnet50|ensemble] [--out predictions.csv]
                     [--threshold T] [--models-dir models] [--explain DIR] [--params params.yaml]

INPUT: image files, folders (searched recursively for images) or CSV files with a `path` column.
Images get the training preprocessing (see stages.modeling.prediction). BreakHis-named files (by name alone,
in or out of the official layout) are also summarised per patient. The threshold, the ensemble's
weights and (with `evaluate.calibration: temperature`) each model's temperature are those evaluate
used (params.yaml, and metrics/evaluate.json where evaluate chose them on the validation split).
Not a DVC stage.
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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.data.images import write_rgb
from stages.data.ingestion import source_aspect
from stages.data.stain import StainNormalization
from stages.modeling.prediction import (
    ENSEMBLE,
    MODEL_NAMES,
    Decision,
    aggregate_by_patient,
    check_images,
    collect_inputs,
    decision_rule,
    ensemble_members,
    load_for_model,
    load_model,
    model_file,
    name_info,
    predict_batch,
    read_metrics,
)
from stages.modeling.views import ViewParams, view_params
from stages.pipeline.files import write_text_atomically
from stages.pipeline.logs import quiet_native_logs
from stages.pipeline.params import Params, load_params
from stages.pipeline.paths import EVALUATE_METRICS, MODELS_DIR, PARAMS_FILE
from stages.pipeline.stage import run_stage

if TYPE_CHECKING:
    import keras

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
        help="one model, or the ensemble of the models present (default; weighted as evaluate.ensemble)",
    )
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="folder of <model>.keras")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="per-image CSV")
    parser.add_argument(
        "--patients-out",
        type=Path,
        default=None,
        help="per-patient CSV for BreakHis-named files (default: <out>_patients.csv)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="malignant if probability >= this (default: evaluate.threshold, or the one evaluate chose)",
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        default=EVALUATE_METRICS,
        help="the run's evaluation: thresholds and ensemble weights chosen on validation",
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


def check_output(path: Path, option: str) -> None:
    """Refuse an output path that cannot be written, before any model runs."""
    if path.is_dir():
        raise ValueError(
            f"{option} {path}: is a folder; give a file name (for example {path / 'predictions.csv'})"
        )
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"{option} {path}: not writable")


def predict_command(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: must be at least 1")
    check_output(args.out, "--out")
    if args.patients_out:
        check_output(args.patients_out, "--patients-out")
    if args.explain and args.explain.exists() and not args.explain.is_dir():
        raise ValueError(f"--explain {args.explain}: is a file; give a folder for the overlays")
    params = read_params(args.params)
    size, aspect = params.ingest.image_size, source_aspect(params.data)
    view = view_params(params.train, test_time_flips=params.evaluate.test_time_flips)

    # everything that can be wrong with the inputs is found before TensorFlow or a model is loaded
    names, missing = ensemble_members(args.model, args.models_dir)
    rule = decision_rule(
        names, args.model, params.evaluate, read_metrics(args.metrics), args.threshold, args.metrics
    )
    paths = collect_inputs(args.inputs)
    workers = min(8, os.cpu_count() or 1)
    check_images(paths, size, aspect, workers)
    if missing:
        print(
            f"warning: {', '.join(f'{n}.keras' for n in missing)} not in {args.models_dir}; "
            f"the ensemble is made of {', '.join(names)} only. That ensemble was never evaluated: "
            f"its threshold {rule.threshold:g} (from {rule.threshold_source}) and its weights were "
            "chosen for the ensemble of all models",
            file=sys.stderr,
        )

    models = {name: load_model(model_file(args.models_dir, name)) for name in names}
    sizing = (size, aspect, params.ingest.stain_normalization)
    probabilities = {
        name: rule.calibrate(name, probs)
        for name, probs in run_models(models, paths, sizing, view, rule, args, workers).items()
    }

    table = pd.DataFrame({"path": paths})
    for name in names:
        table[f"{name}_probability"] = probabilities[name].round(6)
    deciding = f"{args.model}_probability"
    if args.model == ENSEMBLE:
        ensemble = np.sum([rule.weights[n] * probabilities[n] for n in names], axis=0)
        table["ensemble_probability"] = ensemble.round(6)
    table["predicted_class"] = np.where(table[deciding] >= rule.threshold, CLASS_NAMES[1], CLASS_NAMES[0])
    table["threshold"] = rule.threshold
    info = pd.DataFrame([asdict(name_info(p)) for p in paths])
    table = pd.concat([table, info], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(args.out, table.to_csv(index=False))

    malignant = int((table["predicted_class"] == CLASS_NAMES[1]).sum())
    message = (
        f"wrote {args.out}: {len(table)} image(s), {malignant} malignant at threshold "
        f"{rule.threshold:g} (from {rule.threshold_source})"
    )
    if args.model == ENSEMBLE and len(set(rule.weights.values())) > 1:
        message += "; ensemble weights " + ", ".join(f"{n} {w:.3f}" for n, w in rule.weights.items())
    if (table["patient"] != "").any():
        patients_out = args.patients_out or args.out.with_name(f"{args.out.stem}_patients.csv")
        per_patient = aggregate_by_patient(table, deciding, rule.threshold)
        write_text_atomically(patients_out, per_patient.to_csv(index=False))
        message += f"; {len(per_patient)} BreakHis patient(s) in {patients_out}"
    if args.explain:
        message += f"; Grad-CAM overlays in {args.explain}"
    print(message, file=sys.stderr)
    return table


def run_models(
    models: dict[str, keras.Model],
    paths: list[str],
    sizing: tuple[tuple[int, int], float, StainNormalization],
    view: ViewParams,
    rule: Decision,
    args: argparse.Namespace,
    workers: int,
) -> dict[str, np.ndarray]:
    """Every model's probabilities, batch by batch (memory bounded by the batch), with a progress
    bar; with --explain, also the Grad-CAM overlay of every image and model."""
    from stages.modeling.gradcam import GradCam, heatmaps, overlay

    cams = {name: GradCam(model) for name, model in models.items()} if args.explain else {}
    if args.explain:
        args.explain.mkdir(parents=True, exist_ok=True)
    stems = explanation_names(paths)
    batches: dict[str, list[np.ndarray]] = {name: [] for name in models}
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(paths), desc="predict", unit="img", disable=args.quiet) as progress,
    ):
        for start in range(0, len(paths), args.batch_size):
            batch = paths[start : start + args.batch_size]
            images = np.stack(list(pool.map(lambda p: load_for_model(p, *sizing), batch)))
            for name, probs in predict_batch(models, images, view).items():
                batches[name].append(probs)
            for name, cam in cams.items():
                maps, _ = heatmaps(cam, name, images, rule.output_threshold(name), view)
                for stem, image, heatmap in zip(stems[start : start + len(batch)], images, maps, strict=True):
                    write_rgb(args.explain / f"{stem}__{name}.png", overlay(image, heatmap))
            progress.update(len(batch))
    return {name: np.concatenate(parts).astype("float64") for name, parts in batches.items()}


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (`breakhis-predict`); bad input exits 1 with one readable message."""
    if argv is None:  # the command line; called from Python (tests, notebooks), stderr is left alone
        quiet_native_logs()  # before TensorFlow is imported (lazily, after the inputs are checked)

    def run() -> None:
        predict_command(argv)

    run_stage(run)


if __name__ == "__main__":
    main()
