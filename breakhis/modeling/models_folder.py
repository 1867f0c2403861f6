"""The models of a models folder: which model files a prediction run uses, each checked against
the name it is used under (its description) and against evaluate's decisions beside it (their
digests); needs no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from breakhis.evaluation.decision import Decision, DecisionError, check_digests, check_members, read_decision
from breakhis.modeling.description import (
    ModelDescription,
    ModelFileError,
    ModelInput,
    check_identity,
    read_description,
)
from breakhis.pipeline.files import FILE, MISSING, file_kind
from breakhis.pipeline.param_types import ENSEMBLE, MODEL_NAMES
from breakhis.pipeline.paths import DECISION_FILE_NAME, MODEL_FILE_NAME, decision_file, model_dir, model_file


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
