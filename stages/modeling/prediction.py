"""Running trained models on new image files, with the same preprocessing as training.

A raw file goes the way an ingested image went before training, through the same functions:
`images.read_rgb` -> ingest's size check (`images.size_problem`) -> `images.cover_and_crop` to
`ingest.image_size` (so a raw 700x460 BreakHis PNG and an already ingested one end identical)
-> `input_pipeline.resize_image` to the model's input size -> `input_pipeline.preprocess` for the
model. Every size, scale and setting comes from the model's own description
(`stages.modeling.description`), never from params.yaml; models load with `safe_mode=True`.

TensorFlow is imported only by the functions that run models, so that the command checks its
inputs (and fails on bad ones) in a second instead of after TensorFlow's import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stages.data.dataset import LayoutError, parse_image_name
from stages.data.images import BREAKHIS_ASPECT, FORMATS, ImageError, cover_and_crop, read_rgb, size_problem
from stages.data.stain import StainNormalization, normalize_stain
from stages.evaluation.decision import Decision, DecisionError, check_digests, read_decision
from stages.modeling.description import (
    ModelDescription,
    ModelFileError,
    ModelInput,
    check_identity,
    read_description,
)
from stages.modeling.views import WHOLE_FIELD, ViewParams, mean_over_views, views_per_image
from stages.pipeline.params import ENSEMBLE, MODEL_NAMES
from stages.pipeline.paths import DECISION_FILE_NAME, MODEL_FILE_NAME, decision_file, model_dir, model_file

if TYPE_CHECKING:
    import keras

IMAGE_SUFFIXES = tuple(FORMATS)


def model_image_size(model: keras.Model) -> tuple[int, int]:
    height, width = model.input_shape[1:3]
    return int(height), int(width)


def check_size(path: Path | str, shape: tuple[int, ...], size: tuple[int, int], aspect: float) -> None:
    """Refuse the sizes ingest refuses (`images.size_problem`; whole-slide images and decompression
    bombs are refused from their header by `images.read_rgb`, before decoding)."""
    problem = size_problem(shape, size, aspect)
    if problem:
        raise ImageError(f"{path}: {problem}")


def load_for_model(
    path: Path | str,
    size: tuple[int, int] | None,
    aspect: float = BREAKHIS_ASPECT,
    stain: StainNormalization = "none",
) -> np.ndarray:
    """A raw or ingested image file as ingest would have stored it: RGB uint8, size-checked,
    cover-and-cropped to `size` (`ingest.image_size`; `aspect`: the source images' width / height)
    and stain-normalised as `ingest.stain_normalization` says (same function, same fixed reference);
    `size=None` keeps the file as it is (an image ingest already wrote)."""
    image = read_rgb(path)
    if size is None:
        return image
    check_size(path, image.shape, size, aspect)
    return normalize_stain(cover_and_crop(image, size), stain).image


def check_images(
    paths: Sequence[str], size: tuple[int, int], aspect: float = BREAKHIS_ASPECT, workers: int = 4
) -> None:
    """Decode and size-check every image first; raise one ImageError listing all the bad ones."""

    def problem(path: str) -> str:
        try:
            check_size(path, read_rgb(path).shape, size, aspect)
        except ImageError as exc:
            return str(exc)
        return ""

    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        problems = [p for p in pool.map(problem, paths) if p]
    if problems:
        raise ImageError(f"{len(problems)} image(s) cannot be used:\n  " + "\n  ".join(problems))


def model_inputs(
    model_name: str, model: keras.Model, images: np.ndarray, view: ViewParams = WHOLE_FIELD
) -> np.ndarray:
    """A batch of ingest-sized RGB uint8 images -> the named model's input views, image by image
    (training's and evaluate's own functions: the field resized, or the grid of patches)."""
    from stages.modeling.input_pipeline import inference_views, preprocess

    return np.asarray(preprocess(model_name, inference_views(images, model_image_size(model), view)))


def predict_batch(
    models: Mapping[str, keras.Model], images: np.ndarray, views: Mapping[str, ViewParams]
) -> dict[str, np.ndarray]:
    """Malignant probability of every model for a batch of ingest-sized RGB uint8 images: the mean
    over each image's views (`views[name]`: how that model sees a field), as evaluate computes it."""
    probabilities = {}
    for name, model in models.items():
        view = views[name]
        count = views_per_image(images.shape[1:3], model_image_size(model), view)
        per_view = np.asarray(model(model_inputs(name, model, images, view), training=False)).reshape(-1)
        probabilities[name] = mean_over_views(per_view, count)
    return probabilities


def predict_ingested(
    name: str, model: keras.Model, paths: Sequence[str], view: ViewParams, batch_size: int = 64
) -> np.ndarray:
    """Malignant probability of the named model for each ingested image file (as ingest wrote them,
    streamed through tf.data: memory bounded by the batch): the mean over the model's views."""
    from stages.modeling.input_pipeline import field_size, inference_dataset

    size = model_image_size(model)
    data = inference_dataset(paths, model_name=name, image_size=size, batch_size=batch_size, view=view)
    views = views_per_image(field_size(paths[0]), size, view)
    return mean_over_views(model.predict(data, verbose=0).reshape(-1), views)


# ---- the models of a models folder --------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One model of a models folder: its file, what it says it is, and evaluate's decision for it."""

    name: str
    path: Path
    description: ModelDescription
    decision: Decision | None
    decision_path: Path


def _entry(folder: Path, expected: str | None) -> ModelEntry:
    path = folder / MODEL_FILE_NAME
    description = read_description(path)
    if expected is not None:
        check_identity(path, description, expected)
    decision_path = folder / DECISION_FILE_NAME
    decision = read_decision(decision_path)
    if decision is not None:
        if decision.model != description.name:
            raise DecisionError(
                f"{decision_path}: a decision for {decision.model}, beside a {description.name} model"
            )
        check_digests(decision_path, decision, {description.name: path})
    return ModelEntry(description.name, path, description, decision, decision_path)


@dataclass(frozen=True)
class ModelSet:
    """The models a prediction run uses, the evaluated ensemble's decision, and what is missing."""

    entries: list[ModelEntry]
    ensemble: Decision | None
    missing: list[str]
    deciding: str  # the model whose probability decides, or the ensemble

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]


def find_models(models_dir: Path, model: str) -> ModelSet:
    """The models to run for `--model` from a models folder: either one model's folder (a fetched
    artifact: `model.keras`, optionally `decision.json`) or a folder of model folders
    (`<model>/model.keras`, `ensemble/decision.json`). Every file's description is checked against
    the name it is used under, and every decision against the digest of its model file. Raises
    ModelFileError / DecisionError naming the file; needs no TensorFlow."""
    if model not in (*MODEL_NAMES, ENSEMBLE):
        raise ValueError(f"unknown model '{model}' (choose from {', '.join((*MODEL_NAMES, ENSEMBLE))})")
    models_dir = Path(models_dir)
    if (models_dir / MODEL_FILE_NAME).is_file():  # one model's folder
        entry = _entry(models_dir, None if model == ENSEMBLE else model)
        return ModelSet([entry], None, [], entry.name)
    old = sorted(p.name for p in models_dir.glob("*.keras"))
    if old and not any(model_file(name, models_dir).exists() for name in MODEL_NAMES):
        raise ModelFileError(
            f"{models_dir}: {', '.join(old)} in the layout before models described themselves; this "
            f"version keeps each model in its own folder (<model>/{MODEL_FILE_NAME}): "
            "retrain with `dvc repro`"
        )
    if model != ENSEMBLE:
        return ModelSet([_entry(model_dir(model, models_dir), model)], None, [], model)
    present = [name for name in MODEL_NAMES if model_file(name, models_dir).is_file()]
    if not present:
        raise ModelFileError(
            f"{models_dir}: no model files "
            f"({', '.join(f'{n}/{MODEL_FILE_NAME}' for n in MODEL_NAMES)}); "
            "train them with `dvc repro`, fetch them with `dvc pull` or `dvc artifacts get`, "
            "or pass --models-dir"
        )
    entries = [_entry(model_dir(name, models_dir), name) for name in present]
    ensemble_path = decision_file(ENSEMBLE, models_dir)
    ensemble = read_decision(ensemble_path)
    if ensemble is not None:
        check_digests(
            ensemble_path, ensemble, {e.name: e.path for e in entries if e.name in ensemble.weights}
        )
    missing = [name for name in MODEL_NAMES if name not in present]
    return ModelSet(entries, ensemble, missing, ENSEMBLE)


def common_input(entries: Sequence[ModelEntry]) -> ModelInput:
    """The ingest-side input the models share (field size, source aspect, stain normalisation): an
    image is read once for all of them. Models trained on differently prepared images are refused."""
    first = entries[0].description.input
    for entry in entries[1:]:
        other = entry.description.input
        if (other.field_size, other.source_aspect, other.stain_normalization) != (
            first.field_size,
            first.source_aspect,
            first.stain_normalization,
        ):
            raise ModelFileError(
                f"{entries[0].path} and {entry.path} were trained on differently prepared images "
                f"(field {first.field_size} vs {other.field_size}, stain {first.stain_normalization} vs "
                f"{other.stain_normalization}): predict with one --model at a time"
            )
    return first


# ---- inputs -------------------------------------------------------------------------------------


def _paths_from_csv(csv_path: Path) -> list[str]:
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from exc
    if "path" not in frame.columns:
        raise ValueError(f"{csv_path}: no 'path' column (columns: {', '.join(frame.columns) or 'none'})")
    paths = []
    for value in frame["path"]:
        if not value:
            raise ValueError(f"{csv_path}: empty value in the 'path' column")
        candidate = Path(value)
        # relative paths: from the current folder (like data/split/*.csv), else from the CSV's folder
        if not candidate.is_absolute() and not candidate.exists() and (csv_path.parent / candidate).exists():
            candidate = csv_path.parent / candidate
        paths.append(str(candidate))
    return paths


def collect_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Image paths from files, folders (searched recursively for image files) and CSVs of paths.

    Raises FileNotFoundError naming every path that does not exist, and ValueError for an empty
    folder or a CSV without a `path` column."""
    paths: list[str] = []
    missing: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            paths.extend(str(p) for p in found)
        elif path.suffix.lower() == ".csv" and path.is_file():
            listed = _paths_from_csv(path)
            missing.extend(f"{p} (listed in {path})" for p in listed if not Path(p).is_file())
            paths.extend(listed)
        elif path.is_file():
            paths.append(str(path))
        else:
            missing.append(str(path))
    if missing:
        raise FileNotFoundError(f"{len(missing)} input(s) not found:\n  " + "\n  ".join(missing))
    if not paths:
        raise ValueError("no input images given")
    return paths


# ---- BreakHis names and patients ----------------------------------------------------------------


@dataclass(frozen=True)
class NameInfo:
    """What a BreakHis file name says; empty strings for other names."""

    patient: str = ""
    patient_group: str = ""
    magnification: str = ""
    label_from_name: str = ""


def name_info(path: str) -> NameInfo:
    try:
        record = parse_image_name(Path(path))
    except LayoutError:
        return NameInfo()
    return NameInfo(record.patient, record.patient_group, f"{record.magnification}X", record.label)


def aggregate_by_patient(predictions: pd.DataFrame, probability: str, threshold: float) -> pd.DataFrame:
    """Per patient (BreakHis-named rows only), as in stages.evaluation.metrics: the mean probability decides
    the patient's class; `malignant_fraction` is the fraction of their images predicted malignant."""
    named = predictions[predictions["patient"] != ""]
    frame = named.assign(malignant=(named[probability] >= threshold).astype(float))
    per_patient = frame.groupby("patient", sort=True).agg(
        patient_group=("patient_group", "first"),
        label_from_name=("label_from_name", "first"),
        images=("path", "size"),
        mean_probability=(probability, "mean"),
        malignant_fraction=("malignant", "mean"),
    )
    per_patient["predicted_class"] = np.where(
        per_patient["mean_probability"] >= threshold, "malignant", "benign"
    )
    per_patient["threshold"] = threshold
    return per_patient.reset_index().round({"mean_probability": 6, "malignant_fraction": 6})
