"""Running trained models on new image files, with the same preprocessing as training.

A raw file goes the way an ingested image went before training, through the same functions:
`images.read_rgb` -> ingest's size check (`images.size_problem`) -> `images.cover_and_crop` to
`ingest.image_size` (so a raw 700x460 BreakHis PNG and an already ingested one end identical)
-> `input_pipeline.resize_image` to the model's input size -> `input_pipeline.preprocess` for the
model. Every size, scale and setting comes from the model's own description
(`breakhis.modeling.description`), never from params.yaml; models load with `safe_mode=True`.

TensorFlow is imported only by the functions that run models, so that the command checks its
inputs (and fails on bad ones) in a second instead of after TensorFlow's import.
"""

from __future__ import annotations

import codecs
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from breakhis.data.dataset import LayoutError, is_clutter, parse_image_name
from breakhis.data.images import BREAKHIS_ASPECT, FORMATS, ImageError, cover_and_crop, read_rgb, size_problem
from breakhis.data.stain import StainNormalization, normalize_stain
from breakhis.evaluation.decision import Decision, DecisionError, check_digests, check_members, read_decision
from breakhis.modeling.description import (
    ModelDescription,
    ModelFileError,
    ModelInput,
    check_identity,
    read_description,
)
from breakhis.modeling.views import WHOLE_FIELD, ViewParams, mean_over_views, views_per_image
from breakhis.pipeline.files import FILE, FOLDER, MISSING, file_kind, is_special
from breakhis.pipeline.param_types import ENSEMBLE, MODEL_NAMES
from breakhis.pipeline.paths import DECISION_FILE_NAME, MODEL_FILE_NAME, decision_file, model_dir, model_file
from breakhis.pipeline.stage import listed
from breakhis.pipeline.task import SUBTYPE_CLASSES, predicted_subtypes

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
    from breakhis.modeling.input_pipeline import inference_views, preprocess

    views = inference_views(images, model_image_size(model), view)
    return np.asarray(preprocess(model_name, views, view.colour))


def predict_batch(
    models: Mapping[str, keras.Model], images: np.ndarray, views: Mapping[str, ViewParams]
) -> dict[str, np.ndarray]:
    """Malignant probability of every model for a batch of ingest-sized RGB uint8 images: the mean
    over each image's views (`views[name]`: how that model sees a field), as evaluate computes it."""
    probabilities = {}
    for name, model in models.items():
        view = views[name]
        count = views_per_image(images.shape[1:3], model_image_size(model), view)
        per_view = np.asarray(model(model_inputs(name, model, images, view), training=False))
        probabilities[name] = mean_over_views(per_view, count)
    return probabilities


def predict_ingested(
    name: str, model: keras.Model, paths: Sequence[str], view: ViewParams, batch_size: int = 64
) -> np.ndarray:
    """Malignant probability of the named model for each ingested image file (as ingest wrote them,
    streamed through tf.data: memory bounded by the batch): the mean over the model's views."""
    from breakhis.modeling.input_pipeline import field_size, inference_dataset

    size = model_image_size(model)
    data = inference_dataset(paths, model_name=name, image_size=size, batch_size=batch_size, view=view)
    views = views_per_image(field_size(paths[0]), size, view)
    return mean_over_views(model.predict(data, verbose=0), views)


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


def _present(path: Path) -> bool:
    """Whether a model file is at `path`. Nothing there: False; anything there but a regular file
    (a folder, a device, a broken link) is refused, never taken for an absent model."""
    kind = file_kind(path)
    if kind == MISSING:
        return False
    if kind != FILE:
        raise ModelFileError(f"{path}: {kind}, not a model file; replace it with the model file or remove it")
    return True


def find_models(models_dir: Path, model: str) -> ModelSet:
    """The models to run for `--model` from a models folder: either one model's folder (a fetched
    artifact: `model.keras`, optionally `decision.json`) or a folder of model folders
    (`<model>/model.keras`, `ensemble/decision.json`). Every file's description is checked against
    the name it is used under, and every decision against the digest of its model file. Raises
    ModelFileError / DecisionError naming the file; needs no TensorFlow."""
    if model not in (*MODEL_NAMES, ENSEMBLE):
        raise ValueError(f"unknown model '{model}' (choose from {', '.join((*MODEL_NAMES, ENSEMBLE))})")
    models_dir = Path(models_dir)
    if _present(models_dir / MODEL_FILE_NAME):  # one model's folder
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
    present = [name for name in MODEL_NAMES if _present(model_file(name, models_dir))]
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
        check_members(ensemble_path, ensemble, {e.name: e.path for e in entries})
    missing = [name for name in MODEL_NAMES if name not in present]
    return ModelSet(entries, ensemble, missing, ENSEMBLE)


def common_input(entries: Sequence[ModelEntry]) -> ModelInput:
    """The ingest-side input the models share (field size, source aspect, stain normalisation): an
    image is read once for all of them. Models trained on differently prepared images are refused."""
    first = entries[0].description.input
    for entry in entries[1:]:
        if entry.description.task != entries[0].description.task:
            raise ModelFileError(
                f"{entries[0].path} predicts task {entries[0].description.task}, {entry.path} task "
                f"{entry.description.task}: their outputs cannot be averaged; predict with one --model "
                "at a time, or retrain them for one task"
            )
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

SHOWN = 5  # names a warning lists before "... and N more"
SHOWN_MISSING = 20


@dataclass(frozen=True)
class Inputs:
    """The image files the inputs name, each once, and what was left out and why."""

    listed: list[str]  # every image file named, in order: a file given twice is here twice
    paths: list[str]  # each file once (by its resolved path), the first spelling kept: what runs
    duplicates: list[tuple[str, str]]  # (spelling left out, spelling kept), one per repetition
    csvs: list[str]  # the CSV files given
    skipped: list[str]  # files in the folders that are not images (with what they are, if special)
    hidden: list[str]  # hidden and system files and folders in the folders (folders end with '/')
    relinked: list[str]  # links to a folder already searched (a loop, or a second way in)

    def warnings(self) -> list[str]:
        warnings = []
        if self.skipped:
            warnings.append(
                f"{len(self.skipped)} file(s) in the input folders are not images "
                f"({', '.join(IMAGE_SUFFIXES)}) and were skipped: {listed(self.skipped, SHOWN)}"
            )
        if self.relinked:
            warnings.append(
                f"{len(self.relinked)} symbolic link(s) to a folder already searched, or holding one "
                f"(a loop), not followed: {listed(self.relinked, SHOWN)}"
            )
        if self.duplicates:
            repeats = Counter(self.duplicates)
            named = [
                f"{kept} ({count + 1} times)"
                if left_out == kept
                else f"{left_out} (= {kept}{f', {count} times' if count > 1 else ''})"
                for (left_out, kept), count in repeats.items()
            ]
            warnings.append(
                f"{len(self.duplicates)} input(s) given more than once, each predicted and counted once: "
                f"{listed(named, SHOWN)}"
            )
        return warnings

    def summary(self) -> str:
        """The count of what was skipped without a warning ('' when nothing was)."""
        return f"{len(self.hidden)} hidden or system file(s) or folder(s) skipped" if self.hidden else ""


@dataclass
class _Found:
    """What a search of the inputs gathers."""

    listed: list[str] = field(default_factory=list)
    csvs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)


def _within(real: str, searched: set[str]) -> bool:
    """`real` was searched, or holds a folder that was (a link to an ancestor: a loop)."""
    prefix = os.path.join(real, "")
    return real in searched or any(folder.startswith(prefix) for folder in searched)


def _search_folder(folder: Path, found: _Found) -> list[str]:
    """The image files under `folder`. Symbolic links to folders are followed, each target once:
    a link to a folder already searched, or to one holding it (a loop), is named and not entered.
    Hidden and system entries are counted, other non-images named; a broken link named like an
    image is missing; an unreadable folder is a PermissionError."""
    images: list[str] = []
    searched: set[str] = set()
    unreadable: list[OSError] = []
    tops = [str(folder)]
    while tops:
        top = tops.pop(0)
        if _within(os.path.realpath(top), searched):
            found.relinked.append(top)
            continue
        links = []
        for root, dirs, files in os.walk(top, onerror=unreadable.append):  # links to folders: not entered
            searched.add(os.path.realpath(root))
            kept = []
            for name in sorted(dirs):
                path = str(Path(root, name))
                if is_clutter(name):
                    found.hidden.append(path + "/")
                elif os.path.islink(path):
                    links.append(path)
                else:
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(files):
                path = str(Path(root, name))
                kind = file_kind(path)
                image = Path(name).suffix.lower() in IMAGE_SUFFIXES
                if is_clutter(name):
                    found.hidden.append(path)
                elif kind == FILE:
                    (images if image else found.skipped).append(path)
                elif image and not is_special(kind):  # a broken link, a loop: an image that is missing
                    found.missing.append(f"{path} ({kind})")
                else:
                    found.skipped.append(f"{path} ({kind})")
        queued = {os.path.realpath(t) for t in tops}
        for path in links:
            if _within(os.path.realpath(path), searched | queued):
                found.relinked.append(path)
            else:
                tops.append(path)
                queued.add(os.path.realpath(path))
    if unreadable:
        raise PermissionError(
            f"{folder}: {len(unreadable)} folder(s) in it cannot be read: "
            + listed([f"{exc.filename} ({exc.strerror})" for exc in unreadable], SHOWN)
        )
    return sorted(images, key=Path)


def _listed_in_csv(csv_path: Path, value: str) -> tuple[str, str]:
    """A CSV's path value as a path, and what is there. Relative paths are from the current folder
    (like data/split/*.csv), else from the CSV's folder."""
    candidate = Path(value)
    kind = file_kind(candidate)
    if not candidate.is_absolute() and kind == MISSING:
        beside = csv_path.parent / candidate
        if (beside_kind := file_kind(beside)) != MISSING:
            return str(beside), beside_kind
    return str(candidate), kind


def _paths_from_csv(csv_path: Path, missing: list[str] | None = None) -> list[str]:
    """The paths in a CSV's `path` column, each checked: a CSV lists image files, not folders or
    other CSVs (never followed: no recursion). Missing files are added to `missing`
    (FileNotFoundError when no list is given); everything else wrong is a ValueError naming the line."""
    with csv_path.open("rb") as handle:
        head = handle.read(8192)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError(f"{csv_path}: UTF-16 text; save it as a UTF-8 CSV")
    if b"\0" in head:
        raise ValueError(f"{csv_path}: binary data, not a CSV text file")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        byte = f"byte 0x{exc.object[exc.start]:02x}" if isinstance(exc.object, bytes) else "a byte"
        raise ValueError(
            f"{csv_path}: not a readable CSV (not UTF-8 text: {byte} at position {exc.start}); "
            "save it as a UTF-8 CSV"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from exc
    if "path" not in frame.columns:
        raise ValueError(f"{csv_path}: no 'path' column (columns: {', '.join(frame.columns) or 'none'})")
    if frame.empty:
        raise ValueError(f"{csv_path}: no rows (a header and nothing under it)")
    own = [] if missing is None else missing
    looked_up: dict[str, tuple[str, str]] = {}  # value -> (path, kind): 100,000 rows of one path stat once
    paths = []
    for index, value in enumerate(frame["path"]):
        line = index + 2  # the header is line 1
        if not value.strip():
            raise ValueError(f"{csv_path}: empty value in the 'path' column (line {line})")
        if value not in looked_up:
            looked_up[value] = _listed_in_csv(csv_path, value)
        path, kind = looked_up[value]
        if kind == FILE and Path(path).suffix.lower() == ".csv":
            raise ValueError(
                f"{csv_path}: line {line} lists a CSV ({value}): CSVs inside CSVs are not followed; "
                "give it on the command line"
            )
        if kind == FOLDER:
            raise ValueError(
                f"{csv_path}: line {line} lists a folder ({value}); a CSV lists image files: give the "
                "folder on the command line"
            )
        if is_special(kind):
            raise ValueError(f"{csv_path}: line {line} lists {kind} ({value}); a CSV lists image files")
        if kind != FILE:
            note = "" if kind == MISSING else f", {kind}"
            own.append(f"{value} (listed in {csv_path}, line {line}{note})")
        paths.append(path)
    if missing is None and own:
        raise FileNotFoundError(_not_found(own))
    return paths


def _not_found(missing: Sequence[str]) -> str:
    return f"{len(missing)} input(s) not found:\n  " + listed(missing, SHOWN_MISSING, "\n  ")


def _once_each(listed: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Each file once, by its resolved path (spellings, relative or absolute, symbolic links), the
    first spelling kept; and the (left out, kept) spellings of the repetitions."""
    kept: dict[str, str] = {}
    resolved: dict[str, str] = {}
    duplicates = []
    for path in listed:
        real = resolved.get(path)
        if real is None:
            real = resolved[path] = os.path.realpath(path)
        if real in kept:
            duplicates.append((path, kept[real]))
        else:
            kept[real] = path
    return list(kept.values()), duplicates


def read_inputs(inputs: Iterable[str | Path]) -> Inputs:
    """The image files named by files, folders (searched recursively, see `_search_folder`) and
    CSVs of paths (`_paths_from_csv`), each file once, with what was left out.

    Raises FileNotFoundError naming every path that does not exist (broken links and loops
    included), and ValueError for an empty path, a device, FIFO or socket, an empty folder or a
    CSV that cannot be used."""
    found = _Found()
    for item in inputs:
        if not str(item).strip():
            raise ValueError("an empty input path (an unset variable?): give image files, folders or CSVs")
        path = Path(item)
        kind = file_kind(path)
        if kind == FOLDER:
            before = (len(found.skipped), len(found.hidden), len(found.missing))
            images = _search_folder(path, found)
            if not images and len(found.missing) == before[2]:
                others = found.skipped[before[0] :]
                hidden = len(found.hidden) - before[1]
                raise ValueError(
                    f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder"
                    + (f"; {len(others)} other file(s): {listed(others, SHOWN)}" if others else "")
                    + (f"; {hidden} hidden or system file(s) or folder(s)" if hidden else "")
                )
            found.listed.extend(images)
        elif kind == FILE and path.suffix.lower() == ".csv":
            found.csvs.append(str(path))
            found.listed.extend(_paths_from_csv(path, found.missing))
        elif kind == FILE:
            found.listed.append(str(path))
        elif is_special(kind):
            raise ValueError(f"{path}: is {kind}; inputs are image files, folders or CSVs")
        else:
            found.missing.append(str(path) if kind == MISSING else f"{path} ({kind})")
    if found.missing:
        raise FileNotFoundError(_not_found(found.missing))
    if not found.listed:
        raise ValueError("no input images given")
    paths, duplicates = _once_each(found.listed)
    return Inputs(found.listed, paths, duplicates, found.csvs, found.skipped, found.hidden, found.relinked)


def collect_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Every image file the inputs name, in order (a file given twice is here twice); `read_inputs`
    has each file once and what was skipped. Raises as `read_inputs` does."""
    return read_inputs(inputs).listed


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
    """Per patient (BreakHis-named rows only), as in breakhis.evaluation.metrics: the mean probability decides
    the patient's class; `malignant_fraction` is the fraction of their images predicted malignant. With
    subtype probabilities (`p_A`...), also their means and the patient's most probable subtype."""
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
    columns = [f"p_{code}" for code in SUBTYPE_CLASSES]
    if set(columns) <= set(named.columns):
        means = named.groupby("patient", sort=True)[columns].mean()
        per_patient[columns] = means.round(6)
        per_patient["predicted_subtype"] = predicted_subtypes(means.to_numpy())
    return per_patient.reset_index().round({"mean_probability": 6, "malignant_fraction": 6})
