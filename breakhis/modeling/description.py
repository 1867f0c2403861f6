"""What a saved model is and how to use it, stored inside the model file itself.

A `.keras` file is a zip archive; the train stage adds one member to it, `breakhis-model.json`:
the model's name and architecture, its task and classes, how it sees an image (field or patches,
sizes, stain normalisation, preprocessing), the magnifications and data it was trained on (with
their digests), and the params, code and environment it was trained with. Weights and identity
cannot part: DVC versions them as one file, `dvc artifacts get` delivers them together, and a file
copied under another model's name still says what it is. Evaluate, predict, Grad-CAM and the
model card read this, never the current params.yaml. Reading it needs no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from breakhis.data.images import source_aspect
from breakhis.modeling.views import ViewParams, training_view
from breakhis.pipeline.code import ROOT, code_digest
from breakhis.pipeline.environment import environment_lock
from breakhis.pipeline.files import file_digest
from breakhis.pipeline.param_types import MODEL_NAMES, Colour
from breakhis.pipeline.params import Params, training_seed
from breakhis.pipeline.stage import listed
from breakhis.pipeline.task import BINARY_CLASSES, Task, classes, outputs
from breakhis.pipeline.train_params import CustomCNNParams, fit_settings, upgrade_recorded

if TYPE_CHECKING:
    import keras

DESCRIPTION_MEMBER = "breakhis-model.json"  # the zip member of a .keras file that describes it
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every member's time in a saved model (the zip format's earliest)
CHUNK_BYTES = 1 << 20
# the params a model stores as those it was trained with, its own section of `models` only: keys that
# the train stage does not depend on (evaluate's, the upstream stages') would make a stored value stale
TRAINED_WITH = {"seed", "task", "train", "models"}
FORMAT = 1  # of the description; a reader refuses other formats
TRAINED_BY = "stages.train"  # the stage that trains models: the code it runs is a model's code version
# what each model expects of a float RGB image in [0, 255] (breakhis.modeling.input_pipeline.preprocess)
PREPROCESSING = {
    "custom": "RGB in [0, 255]; rescaled to [0, 1] inside the model",
    "vgg19": "keras.applications.vgg19.preprocess_input (BGR, ImageNet channel means subtracted)",
    "resnet50": "keras.applications.resnet50.preprocess_input (BGR, ImageNet channel means subtracted)",
}


class ModelFileError(ValueError):
    """A model file is missing, cannot be loaded, or is not the model it is said to be."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInput(_Record):
    """How the model sees an image: ingest's field, then the field resized or a grid of patches."""

    view: Literal["field", "patches"]
    image_size: tuple[int, int]  # the model's input, [height, width]
    patch_scale: float  # patches: the field is scaled by this before patches are cut
    patches_per_image: int  # random patches per image and epoch in training
    field_size: tuple[int, int]  # ingest.image_size: every raw image is covered and cropped to this
    source_aspect: float  # width / height ingest expected of the raw images (size checks)
    stain_normalization: Literal["none", "macenko"]
    preprocessing: str
    colour: Colour = "rgb"  # models saved before train.colour existed saw RGB

    def view_params(self, *, test_time_flips: bool) -> ViewParams:
        """The inference view (a covering grid of patches, or the field), as evaluate scored it."""
        return ViewParams(self.view, self.patch_scale, self.patches_per_image, test_time_flips, self.colour)


class TrainingData(_Record):
    source: Literal["synthetic", "breakhis", "kaggle"]
    path: str | None
    magnifications: list[int]  # those of the images it was trained on (not merely data.magnifications)
    images: int  # train images (after augmentation) and validation images
    validation_images: int
    copies: int | None = None  # of `images`, augment's copies (the rest are originals); None: not recorded
    digests: dict[str, str]  # SHA-256 of the split files the model was trained and validated on


class ModelDescription(_Record):
    format: int = FORMAT
    name: str  # one of MODEL_NAMES
    architecture: str
    initial_weights: str  # none | imagenet | a weights file
    task: Task = "binary"  # binary: one output, P(malignant); subtype: one probability per class
    classes: tuple[str, ...] = BINARY_CLASSES
    input: ModelInput
    data: TrainingData
    training: dict[str, Any]  # seed, epochs trained, the epoch whose weights were kept
    code: dict[str, Any]  # digest of the train stage's code (breakhis.pipeline.code), environment lock
    params: dict[str, Any]  # the params it was trained with: TRAINED_WITH, its own models.<name> only

    @field_validator("params", mode="before")
    @classmethod
    def _today_layout(cls, params: Any) -> Any:
        """A model saved before the per-model sections left `train` records them there."""
        return upgrade_recorded(params) if isinstance(params, dict) else params

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model '{name}' (the pipeline trains {', '.join(MODEL_NAMES)})")
        return name

    @model_validator(mode="after")
    def _classes_of_the_task(self) -> ModelDescription:
        if self.classes != classes(self.task):
            raise ValueError(f"classes {list(self.classes)} are not those of task {self.task}")
        return self

    @property
    def synthetic(self) -> bool:
        return self.data.source == "synthetic"


def architecture(name: str, params: Params) -> str:
    own = params.models.of(name)
    if isinstance(own, CustomCNNParams):
        return (
            f"custom CNN: 4 convolution blocks {own.filters}"
            f"{' with BatchNorm' if own.batch_norm else ''}, dropout {own.dropout:g}, "
            f"{head(params.task)}"
        )
    backbone = "VGG19 with BatchNorm (from scratch)" if name == "vgg19" and own.weights == "none" else name
    return f"{backbone} backbone, global average pooling, dropout {own.dropout:g}, {head(params.task)}"


def head(task: Task) -> str:
    return "an 8-way softmax (subtypes)" if task == "subtype" else "one sigmoid unit"


def code_version(root: Path = ROOT) -> dict[str, Any]:
    """A digest of the code the train stage runs (every project file it imports, as dvc.yaml lists
    them; exact with or without git) and the environment lock. No git commit: the same code at
    another commit (the commit that records this run's outputs, a fresh clone) must give the same
    model file, and an edit to code the stage never runs (an evaluation table, a command) must not
    change it either."""
    return {"code_digest": code_digest(TRAINED_BY, root), **environment_lock()}


def describe(
    name: str,
    params: Params,
    *,
    data_files: Sequence[Path],
    images: int,
    validation_images: int,
    magnifications: Sequence[int],
    training: dict[str, Any],
    copies: int | None = None,
) -> ModelDescription:
    """The description of a model the train stage has just trained with `params`."""
    own = params.models.of(name)
    settings = fit_settings(params.train, own)
    view = training_view(params.train, own)
    return ModelDescription(
        name=name,
        architecture=architecture(name, params),
        initial_weights=getattr(own, "weights", "none"),
        task=params.task,
        classes=classes(params.task),
        input=ModelInput(
            view=view.input,
            image_size=settings.image_size,
            patch_scale=view.patch_scale,
            patches_per_image=view.patches_per_image,
            field_size=params.ingest.image_size,
            source_aspect=source_aspect(params.data),
            stain_normalization=params.ingest.stain_normalization,
            preprocessing=PREPROCESSING[name],
            colour=view.colour,
        ),
        data=TrainingData(
            source=params.data.source,
            path=params.data.path,
            magnifications=sorted(int(m) for m in magnifications),
            images=images,
            validation_images=validation_images,
            copies=copies,
            digests={str(path): file_digest(path) for path in data_files},
        ),
        training={"seed": training_seed(params), **training},
        code=code_version(),
        params=params.model_dump(
            mode="json", include=TRAINED_WITH, exclude={"models": set(MODEL_NAMES) - {name}}
        ),
    )


def save_model(model: keras.Model, path: Path, description: ModelDescription) -> None:
    """Save the model with its description inside, atomically (a killed save leaves no half file) and
    reproducibly: the same model and description give the same bytes (`reproducible_archive`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")  # Keras insists on the .keras suffix
    archived = path.with_name(f".{path.stem}.partial.zip")
    try:
        model.save(partial)
        reproducible_archive(partial, archived, description)
        os.replace(archived, path)
    finally:
        partial.unlink(missing_ok=True)
        archived.unlink(missing_ok=True)


def reproducible_archive(keras_file: Path, target: Path, description: ModelDescription) -> None:
    """Keras's archive rewritten member by member, in Keras's order, then the description: every
    member with the same time (ZIP_TIME) and mode, and Keras's metadata and config without what
    changes from run to run (KERAS_REWRITES). The weights (HDF5, written without object times) are
    the same for the same model."""
    with zipfile.ZipFile(keras_file) as source, zipfile.ZipFile(target, "w") as archive:
        for info in source.infolist():
            member = _member(info.filename, info.compress_type, info.file_size)
            if info.filename in KERAS_REWRITES:
                archive.writestr(member, KERAS_REWRITES[info.filename](source.read(info)))
                continue
            with source.open(info) as data, archive.open(member, "w") as copy:
                shutil.copyfileobj(data, copy, CHUNK_BYTES)
        text = description.model_dump_json(indent=2)
        archive.writestr(_member(DESCRIPTION_MEMBER, zipfile.ZIP_STORED, len(text)), text)


def _without_save_time(metadata: bytes) -> str:
    """Keras's metadata.json without `date_saved` (the time of the save)."""
    data = json.loads(metadata)
    data.pop("date_saved", None)
    return json.dumps(data)


def _shared_objects_numbered(config: bytes) -> str:
    """Keras's config.json with each shared object (a dtype policy shared by layers) numbered 1, 2, ...
    in order of first appearance: Keras names them by their memory address, another in every run.
    Loading only matches equal numbers, so it rebuilds the same model."""
    numbers: dict[Any, int] = {}

    def renumbered(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: numbers.setdefault(value, len(numbers) + 1)
                if key == "shared_object_id"
                else renumbered(value)
                for key, value in node.items()
            }
        return [renumbered(item) for item in node] if isinstance(node, list) else node

    return json.dumps(renumbered(json.loads(config)))


KERAS_REWRITES = {"metadata.json": _without_save_time, "config.json": _shared_objects_numbered}


def _member(name: str, compression: int, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type, info.file_size = compression, size  # the size: ZIP64 only when needed
    info.create_system, info.external_attr = 3, 0o644 << 16  # as written on Unix, rw-r--r--
    return info


def require_model_file(path: Path) -> None:
    if not Path(path).is_file():
        raise ModelFileError(
            f"{path}: model file not found (train it with `dvc repro`, fetch it with `dvc pull` or "
            "`dvc artifacts get`, or point --models-dir at the folder that holds it)"
        )


def read_description(path: Path) -> ModelDescription:
    """The description stored in a model file; ModelFileError when there is none or it is broken."""
    require_model_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if DESCRIPTION_MEMBER not in archive.namelist():
                raise ModelFileError(
                    f"{path}: this model file does not say what it is (no {DESCRIPTION_MEMBER} inside): "
                    "it was not saved by this pipeline's train stage, or by a version before models "
                    "described themselves; retrain it with `dvc repro`"
                )
            raw = archive.read(DESCRIPTION_MEMBER)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a Keras model file ({type(exc).__name__}: {exc})") from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ModelFileError(f"{path}: model description format {found!r}, expected {FORMAT}")
        return ModelDescription.model_validate(data)
    except (ValueError, ValidationError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: broken model description ({exc})") from exc


def check_identity(path: Path, description: ModelDescription, expected: str) -> None:
    """Refuse a model file that is another model than the one asked for."""
    if description.name != expected:
        raise ModelFileError(
            f"{path}: this is the {description.name} model (its description says so), not {expected}: "
            f"put it in the {description.name} folder, or ask for --model {description.name}"
        )


def load_model(path: Path, expected: str | None = None) -> tuple[keras.Model, ModelDescription]:
    """Load a described .keras model with `safe_mode=True` (no arbitrary code), after checking that
    it is the `expected` model; check that the network is the one its description names."""
    description = read_description(path)
    if expected is not None:
        check_identity(path, description, expected)
    import keras

    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors, ...
        raise ModelFileError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from exc
    shape = tuple(int(size) for size in model.input_shape[1:3])
    if model.name != description.name or shape != tuple(description.input.image_size):
        raise ModelFileError(
            f"{path}: the network ({model.name}, input {shape[0]}x{shape[1]}) is not the one its "
            f"description names ({description.name}, input "
            f"{description.input.image_size[0]}x{description.input.image_size[1]})"
        )
    from breakhis.modeling.seed_ensemble import members_of

    seeds = description.params.get("models", {}).get(description.name, {}).get("seeds", 1)
    members = len(members_of(model))
    if members != seeds:
        raise ModelFileError(
            f"{path}: the network averages {members} member(s), but its description says "
            f"models.{description.name}.seeds {seeds}: the file was changed after training; retrain it "
            f"(`dvc repro train-{description.name}`)"
        )
    units = int(model.output_shape[-1])
    if units != outputs(description.task):
        raise ModelFileError(
            f"{path}: the network has {units} output(s), but its description says task "
            f"{description.task} ({outputs(description.task)})"
        )
    broken = non_finite_weights(model)
    if broken:
        raise ModelFileError(
            f"{path}: {len(broken)} of its weight tensors hold NaN or infinity ({listed(broken)}): "
            "its training diverged and every prediction would be meaningless; retrain it (with a lower "
            "learning rate)"
        )
    return model, description


def non_finite_weights(model: keras.Model) -> list[str]:
    """The paths of the model's weight tensors that hold NaN or infinity (none for a usable model)."""
    import keras
    import numpy as np

    return [
        str(getattr(weight, "path", weight.name))
        for weight in model.weights
        if not np.isfinite(keras.ops.convert_to_numpy(weight)).all()
    ]


def describe_models(models_dir: Path) -> dict[str, dict[str, Any] | str]:
    """What each model file of a models folder says it is (its description as JSON data), or why it
    cannot say: what the model card shows."""
    from breakhis.pipeline.paths import model_file

    described: dict[str, dict[str, Any] | str] = {}
    for name in MODEL_NAMES:
        path = model_file(name, models_dir)
        try:
            described[name] = read_description(path).model_dump(mode="json")
        except ModelFileError as exc:
            described[name] = str(exc).removeprefix(f"{path}: ")
    return described


def describe_for_humans(description: ModelDescription) -> str:
    """One line: what the model is, how it sees images, and what it was trained on."""
    view = description.input
    seen = (
        f"{view.image_size[0]}x{view.image_size[1]} patches of the field at scale {view.patch_scale:g}"
        if view.view == "patches"
        else f"the whole field resized to {view.image_size[0]}x{view.image_size[1]}"
    )
    data = description.data
    source = "SYNTHETIC images" if description.synthetic else f"{data.source} images"
    task = "the eight subtypes" if description.task == "subtype" else "benign vs malignant"
    return (
        f"{description.name} ({description.architecture}), {task}; sees {seen}; stain normalisation "
        f"{view.stain_normalization}; trained on {data.images} {source} at "
        f"{'/'.join(f'{m}X' for m in data.magnifications)}"
    )
