"""breakhis-predict: run the trained models on new images and write a CSV of probabilities.

    breakhis-predict INPUT... [--model custom|vgg19|resnet50|ensemble] [--out predictions.csv]
                     [--threshold T] [--models-dir models] [--explain DIR]

INPUT: image files, folders (searched recursively for images) or CSV files with a `path` column.
A file given twice (two spellings, a link, a folder and a CSV) is predicted and counted once; files
in folders that are not images are skipped and named, hidden and system files skipped and counted
(breakhis.data.input_files.read_inputs). The outputs are checked before any model loads: a regular
file or a new one, never a folder, device, FIFO or socket nor a file this run reads; a symbolic link
as an output is followed on purpose (its target is replaced, atomically, and the link kept).
Images get the training preprocessing (see breakhis.modeling.prediction). BreakHis-named files (by name alone,
in or out of the official layout) are also summarised per patient. Everything comes from the models
folder alone, never from params.yaml: how each model sees an image from the description inside its
file, the threshold, the ensemble's weights and each model's temperature from the decisions
evaluate wrote beside the models (breakhis.evaluation.decision). Models of the subtype task add the
eight subtype probabilities (p_A ... p_PC) and the predicted subtype; their malignant probability
is the sum of the four carcinomas' (breakhis.pipeline.task). Not a DVC stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from breakhis.data.input_files import Inputs, read_inputs
from breakhis.data.stain import StainNormalization
from breakhis.data.task_of import SUBTYPE_PROBABILITY_COLUMNS, task_of
from breakhis.evaluation.decision import PredictionRule, prediction_rule, soft_vote
from breakhis.modeling.description import ModelInput, describe_for_humans, load_model
from breakhis.modeling.models_folder import ModelEntry, ModelSet, common_input, find_models
from breakhis.modeling.per_patient import aggregate_by_patient, name_info
from breakhis.modeling.prediction import check_images, load_for_model, predict_batch
from breakhis.modeling.views import ViewParams
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.files import FILE, FOLDER, MISSING, check_output, file_kind, write_text_atomically
from breakhis.pipeline.logs import quiet_native_logs
from breakhis.pipeline.param_types import ENSEMBLE, MODEL_NAMES
from breakhis.pipeline.paths import MODELS_DIR, decision_file
from breakhis.pipeline.stage import run_stage
from breakhis.pipeline.task import BINARY_CLASSES as CLASS_NAMES
from breakhis.pipeline.task import SUBTYPE_CLASSES, malignant_probability, predicted_subtypes

if TYPE_CHECKING:
    import keras

# a batch is held in memory decoded, with every model's inputs and activations for it
MAX_BATCH_SIZE = 256


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = command_parser(
        "commands.predict",
        script="breakhis-predict",
        doc="Classify histopathology images as benign or malignant with the trained models "
        "(research use only, not for diagnosis).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="image files, folders of images (searched recursively, links to folders followed once; "
        "non-images skipped and named, hidden and system files skipped), or CSVs with a 'path' column "
        "(of image files); a file given twice is predicted once",
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
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("predictions.csv"),
        help="per-image CSV, replaced atomically; a symbolic link is followed (its target is replaced, "
        "the link kept); a folder, device, FIFO, socket or a file this run reads is refused",
    )
    parser.add_argument(
        "--patients-out",
        type=Path,
        default=None,
        help="per-patient CSV for BreakHis-named files (default: <out>_patients.csv), as --out",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="malignant if probability >= this (default: the threshold evaluate chose, in decision.json); "
        "a subtype model's malignant probability is the sum of its four carcinomas'",
    )
    parser.add_argument(
        "--explain", type=Path, default=None, metavar="DIR", help="write Grad-CAM overlays here"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help=f"images per batch (1 to {MAX_BATCH_SIZE}; default 32)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def explanation_names(paths: Sequence[str]) -> list[str]:
    """File stems for overlays, made unique (`stem-<n>`) where two inputs share a stem."""
    stems = [Path(p).stem for p in paths]
    counts = Counter(stems)
    return [stem if counts[stem] == 1 else f"{stem}-{index}" for index, stem in enumerate(stems)]


def check_folders(args: argparse.Namespace) -> None:
    """--models-dir must be a folder and --explain a folder or nothing yet."""
    kind = file_kind(args.models_dir)
    if kind == FILE:
        raise NotADirectoryError(
            f"--models-dir {args.models_dir}: is a file, not a folder; give its folder "
            f"({args.models_dir.parent})"
        )
    if kind != FOLDER:
        raise FileNotFoundError(
            f"--models-dir {args.models_dir}: {'not found' if kind == MISSING else kind}; train the models "
            "with `dvc repro`, fetch them with `dvc pull` or `dvc artifacts get`, or give the folder that "
            "holds them"
        )
    if args.explain:
        kind = file_kind(args.explain)
        if kind not in (FOLDER, MISSING):
            raise ValueError(
                f"--explain {args.explain}: is {'a file' if kind == FILE else kind}; give a folder for "
                "the overlays"
            )


def check_overwrites(
    outputs: Mapping[str, tuple[Path, Path]], inputs: Inputs, found: ModelSet, models_dir: Path
) -> None:
    """Refuse an output (option -> (as given, file written)) that is a file this run reads, or
    another output: writing it would destroy it."""
    reads = {os.path.realpath(path): "an input" for path in [*inputs.paths, *inputs.csvs]}
    for entry in found.entries:
        reads[os.path.realpath(entry.path)] = f"the {entry.name} model's file"
        reads[os.path.realpath(entry.decision_path)] = f"the {entry.name} model's decision file"
    if found.deciding == ENSEMBLE:
        reads[os.path.realpath(decision_file(ENSEMBLE, models_dir))] = "the ensemble's decision file"
    for option, (given, target) in outputs.items():
        real = os.path.realpath(target)
        if real in reads:
            raise ValueError(f"{option} {given}: is also {reads[real]}; writing it would destroy it")
        reads[real] = option


def predict_command(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    check_batch_size(args.batch_size)
    outputs = {"--out": (args.out, check_output(args.out, "--out"))}
    if args.patients_out:
        outputs["--patients-out"] = (args.patients_out, check_output(args.patients_out, "--patients-out"))
    check_folders(args)

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
    inputs = read_inputs(args.inputs)
    paths = inputs.paths
    info = pd.DataFrame([asdict(name_info(p)) for p in paths])
    if "--patients-out" not in outputs and (info["patient"] != "").any():
        default = args.out.with_name(f"{args.out.stem}_patients.csv")
        outputs["--patients-out"] = (default, check_output(default, "--patients-out"))
    check_overwrites(outputs, inputs, found, args.models_dir)
    workers = min(8, os.cpu_count() or 1)
    check_images(paths, prepared.field_size, prepared.source_aspect, workers)
    for warning in [
        *model_warnings(found, rule),
        *warnings,
        *inputs.warnings(),
        *unseen_magnifications(found, info["magnification"]),
    ]:
        print(f"warning: {warning}", file=sys.stderr)

    probabilities = model_probabilities(found, rule, prepared, paths, args, workers)
    table = predictions_table(found, rule, probabilities, paths, info)
    write_text_atomically(outputs["--out"][1], table.to_csv(index=False))
    patients = write_per_patient(table, f"{found.deciding}_probability", rule.threshold, outputs)
    print(outcome(table, found, rule, outputs, patients, inputs.summary(), args.explain), file=sys.stderr)
    return table


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be at least 1")
    if batch_size > MAX_BATCH_SIZE:
        raise ValueError(
            f"--batch-size {batch_size}: at most {MAX_BATCH_SIZE} (a batch is held in memory, decoded, "
            "with every model's inputs and activations for it)"
        )


def model_probabilities(
    found: ModelSet,
    rule: PredictionRule,
    prepared: ModelInput,
    paths: list[str],
    args: argparse.Namespace,
    workers: int,
) -> dict[str, np.ndarray]:
    """Every model's outputs on the images, calibrated as the decisions say (TensorFlow loads here)."""
    models = {entry.name: load_model(entry.path, entry.name)[0] for entry in found.entries}
    views = {
        entry.name: entry.description.input.view_params(
            test_time_flips=entry.decision is not None and entry.decision.test_time_flips
        )
        for entry in found.entries
    }
    sizing = (prepared.field_size, prepared.source_aspect, prepared.stain_normalization)
    return {
        name: rule.calibrate(name, probs)
        for name, probs in run_models(models, paths, sizing, views, rule, args, workers).items()
    }


def predictions_table(
    found: ModelSet,
    rule: PredictionRule,
    probabilities: dict[str, np.ndarray],
    paths: list[str],
    info: pd.DataFrame,
) -> pd.DataFrame:
    """The per-image CSV: every model's P(malignant), the ensemble's, the call at the threshold, the
    subtypes of a subtype model, what the file name says, and the models that never saw its
    magnification."""
    table = pd.DataFrame({"path": paths})
    for name in found.names:  # P(malignant): a subtype model's four malignant subtypes summed
        table[f"{name}_probability"] = malignant_probability(probabilities[name]).round(6)
    deciding = f"{found.deciding}_probability"
    if found.deciding == ENSEMBLE:
        decided = soft_vote(probabilities, rule.weights)
        table["ensemble_probability"] = malignant_probability(decided).round(6)
    else:
        decided = probabilities[found.deciding]
    table["predicted_class"] = np.where(table[deciding] >= rule.threshold, CLASS_NAMES[1], CLASS_NAMES[0])
    table["threshold"] = rule.threshold
    if task_of(decided) == "subtype":  # the deciding model's (or ensemble's) eight probabilities
        for index, column in enumerate(SUBTYPE_PROBABILITY_COLUMNS):
            table[column] = decided[:, index].round(6)
        table["predicted_subtype"] = predicted_subtypes(decided)
    table = pd.concat([table, info], axis=1)
    table["unseen_by"] = unseen_by(found, info["magnification"])
    return table


def write_per_patient(
    table: pd.DataFrame, deciding: str, threshold: float, outputs: Mapping[str, tuple[Path, Path]]
) -> int | None:
    """Write the per-patient CSV when some file is BreakHis-named; the number of patients in it."""
    if not (table["patient"] != "").any():
        return None
    per_patient = aggregate_by_patient(table, deciding, threshold)
    write_text_atomically(outputs["--patients-out"][1], per_patient.to_csv(index=False))
    return len(per_patient)


def outcome(
    table: pd.DataFrame,
    found: ModelSet,
    rule: PredictionRule,
    outputs: Mapping[str, tuple[Path, Path]],
    patients: int | None,
    skipped: str,
    explain: Path | None,
) -> str:
    """The closing message: what was written, how many images were called malignant, and why."""
    malignant = int((table["predicted_class"] == CLASS_NAMES[1]).sum())
    message = (
        f"wrote {written(*outputs['--out'])}: {len(table)} image(s), {malignant} malignant at threshold "
        f"{rule.threshold:g} (from {rule.threshold_source})"
    )
    if "predicted_subtype" in table:
        counts = table["predicted_subtype"].value_counts()
        message += "; subtypes " + ", ".join(
            f"{code} {counts[code]}" for code in SUBTYPE_CLASSES if code in counts
        )
    if found.deciding == ENSEMBLE and len(set(rule.weights.values())) > 1:
        message += "; ensemble weights " + ", ".join(f"{n} {w:.3f}" for n, w in rule.weights.items())
    if patients is not None:
        message += f"; {patients} BreakHis patient(s) in {written(*outputs['--patients-out'])}"
    if skipped:
        message += f"; {skipped}"
    if explain:
        message += f"; Grad-CAM overlays in {explain}"
    return message


def written(given: Path, target: Path) -> str:
    """An output as the user named it, and the file written when that was a link's target."""
    return str(given) if given == target else f"{given} (the link's target, {target})"


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


def unseen_by(found: ModelSet, magnifications: pd.Series) -> pd.Series:
    """Per image, the models that never trained on its magnification ("" when all did, or when the
    file name gives none): the predictions CSV's `unseen_by` column."""
    trained = {entry.name: trained_magnifications(entry) for entry in found.entries}
    return magnifications.map(
        lambda m: " ".join(name for name, seen in trained.items() if m and m not in seen)
    )


def trained_magnifications(entry: ModelEntry) -> set[str]:
    """The magnifications ("100X") of the images the model trained on, as its description records them."""
    return {f"{m}X" for m in entry.description.data.magnifications}


def unseen_magnifications(found: ModelSet, magnifications: pd.Series) -> list[str]:
    """Images (BreakHis-named: the name gives the magnification) at magnifications a model was not
    trained on: its outputs there are extrapolation."""
    counts = magnifications[magnifications != ""].value_counts()
    warnings = []
    for entry in found.entries:
        seen = trained_magnifications(entry)
        unseen = {str(m): int(n) for m, n in counts.items() if m not in seen}
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
    from breakhis.modeling.gradcam import GradCam, heatmaps, output_caption, overlay
    from breakhis.pipeline.figures import overlay_figure, save_figure

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
                maps, outputs = heatmaps(cam, name, images, rule.output_threshold(name), views[name])
                named = zip(stems[start : start + len(batch)], images, maps, outputs, strict=True)
                for stem, image, heatmap, output in named:  # the map with the probability and a colour bar
                    figure = overlay_figure(overlay(image, heatmap), f"{name}: {output_caption(output)}")
                    save_figure(figure, args.explain / f"{stem}__{name}.png", photos=True)
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
