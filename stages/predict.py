"""breakhis-predict: run the trained models on new images and write a CSV of probabilities.

    breakhis-predict INPUT... [--model custom|vgg19|resnet50|ensemble] [--out predictions.csv]
                     [--threshold T] [--models-dir models] [--explain DIR]

INPUT: image files, folders (searched recursively for images) or CSV files with a `path` column.
Images get the training preprocessing (see stages.modeling.prediction). BreakHis-named files (by name alone,
in or out of the official layout) are also summarised per patient. Everything comes from the models
folder alone, never from params.yaml: how each model sees an image from the description inside its
file, the threshold, the ensemble's weights and each model's temperature from the decisions
evaluate wrote beside the models (stages.evaluation.decision). Not a DVC stage.
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
from stages.data.stain import StainNormalization
from stages.evaluation.decision import PredictionRule, prediction_rule, soft_vote
from stages.modeling.description import CLASSES as CLASS_NAMES
from stages.modeling.description import describe_for_humans, load_model
from stages.modeling.prediction import (
    ENSEMBLE,
    MODEL_NAMES,
    ModelSet,
    aggregate_by_patient,
    check_images,
    collect_inputs,
    common_input,
    find_models,
    load_for_model,
    name_info,
    predict_batch,
)
from stages.modeling.views import ViewParams
from stages.pipeline.files import write_text_atomically
from stages.pipeline.logs import quiet_native_logs
from stages.pipeline.paths import MODELS_DIR
from stages.pipeline.stage import run_stage

if TYPE_CHECKING:
    import keras


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
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=MODELS_DIR,
        help="a folder of model folders (<model>/model.keras), or one model's folder (a fetched artifact)",
    )
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
        help="malignant if probability >= this (default: the threshold evaluate chose, in decision.json)",
    )
    parser.add_argument(
        "--explain", type=Path, default=None, metavar="DIR", help="write Grad-CAM overlays here"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


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

    # everything that can be wrong with the models and inputs is found before TensorFlow is loaded
    found = find_models(args.models_dir, args.model)
    rule, warnings = prediction_rule(
        found.names,
        found.deciding,
        {entry.name: entry.decision for entry in found.entries},
        found.ensemble,
        args.threshold,
        source=str(found.entries[0].decision_path if found.deciding != ENSEMBLE else args.models_dir),
    )
    prepared = common_input(found.entries)
    paths = collect_inputs(args.inputs)
    workers = min(8, os.cpu_count() or 1)
    check_images(paths, prepared.field_size, prepared.source_aspect, workers)
    for warning in [*model_warnings(found, rule), *warnings]:
        print(f"warning: {warning}", file=sys.stderr)

    models = {entry.name: load_model(entry.path, entry.name)[0] for entry in found.entries}
    views = {
        entry.name: entry.description.input.view_params(
            test_time_flips=entry.decision is not None and entry.decision.test_time_flips
        )
        for entry in found.entries
    }
    sizing = (prepared.field_size, prepared.source_aspect, prepared.stain_normalization)
    probabilities = {
        name: rule.calibrate(name, probs)
        for name, probs in run_models(models, paths, sizing, views, rule, args, workers).items()
    }
    names = found.names

    table = pd.DataFrame({"path": paths})
    for name in names:
        table[f"{name}_probability"] = probabilities[name].round(6)
    deciding = f"{found.deciding}_probability"
    if found.deciding == ENSEMBLE:
        table["ensemble_probability"] = soft_vote(probabilities, rule.weights).round(6)
    table["predicted_class"] = np.where(table[deciding] >= rule.threshold, CLASS_NAMES[1], CLASS_NAMES[0])
    table["threshold"] = rule.threshold
    info = pd.DataFrame([asdict(name_info(p)) for p in paths])
    table = pd.concat([table, info], axis=1)
    for warning in unseen_magnifications(found, info["magnification"]):
        print(f"warning: {warning}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(args.out, table.to_csv(index=False))

    malignant = int((table["predicted_class"] == CLASS_NAMES[1]).sum())
    message = (
        f"wrote {args.out}: {len(table)} image(s), {malignant} malignant at threshold "
        f"{rule.threshold:g} (from {rule.threshold_source})"
    )
    if found.deciding == ENSEMBLE and len(set(rule.weights.values())) > 1:
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


def model_warnings(found: ModelSet, rule: PredictionRule) -> list[str]:
    """What the user must know about the models before trusting their outputs."""
    warnings = []
    for entry in found.entries:
        if entry.description.synthetic:
            warnings.append(
                f"{entry.path}: trained on SYNTHETIC images only (the embedded demo data), never on a "
                "real slide: its outputs on real images mean nothing "
                f"({describe_for_humans(entry.description)})"
            )
    if found.missing:
        warnings.append(
            f"{', '.join(f'{n}/model.keras' for n in found.missing)} not in the models folder; the ensemble "
            f"is made of {', '.join(found.names)} only. That ensemble was never evaluated: its threshold "
            f"{rule.threshold:g} ({rule.threshold_source}) and its weights were chosen for the ensemble "
            "of all models"
        )
    return warnings


def unseen_magnifications(found: ModelSet, magnifications: pd.Series) -> list[str]:
    """Images (BreakHis-named: the name gives the magnification) at magnifications a model was not
    trained on: its outputs there are extrapolation."""
    counts = magnifications[magnifications != ""].value_counts()
    warnings = []
    for entry in found.entries:
        seen = {f"{m}X" for m in entry.description.data.magnifications}
        unseen = {magnification: n for magnification, n in counts.items() if magnification not in seen}
        if unseen:
            listed = ", ".join(
                f"{n} at {m}" for m, n in sorted(unseen.items(), key=lambda kv: int(kv[0][:-1]))
            )
            warnings.append(
                f"{listed}: {entry.name} was trained on {'/'.join(sorted(seen, key=lambda m: int(m[:-1])))} "
                "only; its outputs at other magnifications are extrapolation"
            )
    return warnings


def run_models(
    models: dict[str, keras.Model],
    paths: list[str],
    sizing: tuple[tuple[int, int], float, StainNormalization],
    views: dict[str, ViewParams],
    rule: PredictionRule,
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
            for name, probs in predict_batch(models, images, views).items():
                batches[name].append(probs)
            for name, cam in cams.items():
                maps, _ = heatmaps(cam, name, images, rule.output_threshold(name), views[name])
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
