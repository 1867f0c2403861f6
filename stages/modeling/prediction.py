"""Running trained models on new image files, with the same preprocessing as training.

A raw file goes the way an ingested image went before training, through the same functions:
`images.read_rgb` -> ingest's size check (`images.size_problem`) -> `images.cover_and_crop` to
`ingest.image_size` (so a raw 700x460 BreakHis PNG and an already ingested one end identical)
-> `input_pipeline.resize_image` to the model's input size -> `input_pipeline.preprocess` for the
model. Models load with `safe_mode=True`.

TensorFlow is imported only by the functions that run models, so that the command checks its
inputs (and fails on bad ones) in a second instead of after TensorFlow's import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stages.data.dataset import LayoutError, parse_image_name
from stages.data.images import BREAKHIS_ASPECT, FORMATS, ImageError, cover_and_crop, read_rgb, size_problem
from stages.data.stain import StainNormalization, normalize_stain
from stages.evaluation.calibration import apply_temperature, output_threshold
from stages.modeling.views import WHOLE_FIELD, ViewParams, mean_over_views, views_per_image
from stages.pipeline.params import ENSEMBLE, MODEL_NAMES, EvaluateParams
from stages.pipeline.paths import EVALUATE_METRICS

if TYPE_CHECKING:
    import keras

IMAGE_SUFFIXES = tuple(FORMATS)


class ModelFileError(ValueError):
    """A model file is missing or cannot be loaded."""


def model_file(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / f"{name}.keras"


def require_model_file(path: Path) -> None:
    if not Path(path).is_file():
        raise ModelFileError(
            f"{path}: model file not found (train it with `dvc repro`, fetch it with `dvc pull`, "
            "or point --models-dir at the folder that holds it)"
        )


def load_model(path: Path) -> keras.Model:
    """Load a .keras model with `safe_mode=True` (no arbitrary code), or say clearly why not."""
    require_model_file(path)
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors, ...
        raise ModelFileError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from exc


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
    models: Mapping[str, keras.Model], images: np.ndarray, view: ViewParams = WHOLE_FIELD
) -> dict[str, np.ndarray]:
    """Malignant probability of every model for a batch of ingest-sized RGB uint8 images: the mean
    over each image's views, as evaluate computes it."""
    probabilities = {}
    for name, model in models.items():
        views = views_per_image(images.shape[1:3], model_image_size(model), view)
        per_view = np.asarray(model(model_inputs(name, model, images, view), training=False)).reshape(-1)
        probabilities[name] = mean_over_views(per_view, views)
    return probabilities


def ensemble_members(model: str, models_dir: Path) -> tuple[list[str], list[str]]:
    """The models to run for `--model` (ensemble: whichever of the three exist) and the missing ones."""
    if model != ENSEMBLE:
        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model '{model}' (choose from {', '.join((*MODEL_NAMES, ENSEMBLE))})")
        require_model_file(model_file(models_dir, model))
        return [model], []
    present = [name for name in MODEL_NAMES if model_file(models_dir, name).is_file()]
    missing = [name for name in MODEL_NAMES if name not in present]
    if not present:
        raise ModelFileError(
            f"{models_dir}: no model files ({', '.join(f'{n}.keras' for n in MODEL_NAMES)}); "
            "train them with `dvc repro`, fetch them with `dvc pull`, or pass --models-dir"
        )
    return present, missing


@dataclass(frozen=True)
class Decision:
    """How probabilities become a class: the ensemble's weights over the models run, and the threshold."""

    weights: dict[str, float]
    threshold: float
    threshold_source: str
    model_thresholds: dict[str, float]  # each model's own (for explaining the class it predicts)
    temperatures: dict[str, float] = field(default_factory=dict)  # evaluate.calibration: temperature

    def calibrate(self, name: str, probabilities: np.ndarray) -> np.ndarray:
        """A model's outputs as evaluate scored them: temperature-scaled when it fitted one."""
        temperature = self.temperatures.get(name)
        return probabilities if temperature is None else apply_temperature(probabilities, temperature)

    def output_threshold(self, name: str) -> float:
        """The model's own threshold on its raw output (Grad-CAM explains the class it predicts)."""
        return output_threshold(self.model_thresholds[name], self.temperatures.get(name))


def read_metrics(path: Path) -> dict[str, Any]:
    """metrics/evaluate.json of the run, or {} when there is none."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def decision_rule(
    names: Sequence[str],
    deciding: str,
    evaluate: EvaluateParams,
    metrics: Mapping[str, Any],
    threshold: float | None = None,
    metrics_path: Path = EVALUATE_METRICS,
) -> Decision:
    """The weights, threshold and temperatures evaluate used, so that predictions match the
    evaluated models.

    threshold: `--threshold`, else `evaluate.threshold` when fixed, else (youden / f1: chosen per
    model on validation) `<deciding>.threshold` from the run's metrics. Weights: equal for
    `evaluate.ensemble: mean`; for `val_auc`, the run's `ensemble_weights` over the models present."""
    if threshold is not None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"--threshold {threshold}: must be between 0 and 1")
        chosen, source = threshold, "--threshold"
    elif isinstance(evaluate.threshold, float):
        chosen, source = evaluate.threshold, "evaluate.threshold"
    else:
        found = _stored_threshold(metrics, deciding)
        if found is None:
            raise ValueError(
                f"evaluate.threshold is '{evaluate.threshold}' (chosen per model on the validation split "
                f"by evaluate), but {metrics_path} has no '{deciding}.threshold': run `dvc repro evaluate`, "
                "or pass --threshold"
            )
        chosen, source = found, f"{metrics_path} ({evaluate.threshold} on validation)"

    weights = {name: 1.0 / len(names) for name in names}
    if deciding == ENSEMBLE and evaluate.ensemble == "val_auc":
        stored = metrics.get("ensemble_weights")
        if not isinstance(stored, dict) or not all(isinstance(stored.get(n), int | float) for n in names):
            raise ValueError(
                f"evaluate.ensemble is 'val_auc', but {metrics_path} has no ensemble_weights for "
                f"{', '.join(names)}: run `dvc repro evaluate`"
            )
        total = sum(float(stored[n]) for n in names)
        if total > 0:  # else no model beat chance on validation: equal weights, as evaluate does
            weights = {name: float(stored[name]) / total for name in names}
    per_model = dict.fromkeys(names, chosen)
    if threshold is None and not isinstance(evaluate.threshold, float):  # chosen per model
        for name in names:
            stored_threshold = _stored_threshold(metrics, name)
            per_model[name] = chosen if stored_threshold is None else stored_threshold
    temperatures = {}
    if evaluate.calibration == "temperature":
        for name in names:
            result = metrics.get(name)
            calibration = result.get("calibration") if isinstance(result, Mapping) else None
            value = calibration.get("temperature") if isinstance(calibration, Mapping) else None
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(
                    f"evaluate.calibration is 'temperature', but {metrics_path} has no positive "
                    f"'{name}.calibration.temperature': run `dvc repro evaluate`"
                )
            temperatures[name] = float(value)
    return Decision(weights, chosen, source, per_model, temperatures)


def _stored_threshold(metrics: Mapping[str, Any], name: str) -> float | None:
    result = metrics.get(name)
    value = result.get("threshold") if isinstance(result, Mapping) else None
    return float(value) if isinstance(value, int | float) else None


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
