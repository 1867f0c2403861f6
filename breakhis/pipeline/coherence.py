"""The rules between params keys that no single key can check: each combination that could not run,
or would run without doing what it says, is refused when params are loaded, before any stage works
(`Params` runs `incoherences` after every section is valid). Each problem is one line naming the
keys and the fix.

- A patch must fit in the field it is cut from (`train.input: patches`): every model's input size
  (`train.image_size`, or `models.<model>.image_size`) at most `ingest.image_size` x
  `train.patch_scale` (rounded as breakhis.modeling.views cuts them); otherwise training stops in
  TensorFlow's random crop, after ingest, split and augment.
- The whole field (`train.input: field`) is not enlarged: the input size at most `ingest.image_size`
  (a bigger input adds no detail, only compute).
- A shared `train.<key>` set away from its default must reach some model: refused when every model
  overrides it with its own `models.<model>.<key>` (then it changes nothing). A shared key that
  reaches only some models (`train.epochs` with the default `models.custom.epochs` and
  `models.vgg19.epochs`: it changes ResNet50 alone) is allowed: its effective value per model is in
  `docs/reference/params.md` and in each model's description.
- `train.min_epochs` at most every model's epochs (with validation): an epoch before it can neither
  stop training nor be kept, so above a model's epochs only the last epoch would be left to keep.
- A backbone's `weights` file must be one Keras loads: `.weights.h5`, `.h5`, `.hdf5` or `.keras`.
  (ImageNet weights need an RGB input of at least 32x32: every image size is at least 32x32 and
  every input RGB by the schema, so nothing more is checked for them.)
- `split.strategy: official` takes the folds of the Kaggle `Folds.csv`: `data.source: kaggle`.
- `train.snapshot_epochs` within every model's epochs (counted across both phases of transfer
  learning), or a model would have no snapshot for them; and not with a seed ensemble
  (`models.<model>.seeds` above 1): a snapshot holds the weights of one network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.train_params import (
    BackboneParams,
    ModelOverrides,
    ModelsParams,
    TrainParams,
    fit_key,
    fit_settings,
)

if TYPE_CHECKING:
    from breakhis.pipeline.params import Params

WEIGHTS_FILE_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")  # what keras' load_weights reads


def scaled_size(field: tuple[int, int], scale: float) -> tuple[int, int]:
    """The field size after scaling by `scale`, as patches are cut from it (round half to even, as
    TensorFlow's tf.round in breakhis.modeling.input_pipeline)."""
    return max(1, round(field[0] * scale)), max(1, round(field[1] * scale))


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _too_big(train: TrainParams, models: ModelsParams, room: tuple[int, int]) -> dict[str, list[str]]:
    """{size key: models} whose input size does not fit in `room`."""
    found: dict[str, list[str]] = {}
    for name in MODEL_NAMES:
        size = fit_settings(train, models.of(name)).image_size
        if size[0] > room[0] or size[1] > room[1]:
            found.setdefault(fit_key(models.of(name), name, "image_size"), []).append(name)
    return found


def _least_scale(field: tuple[int, int], patch: tuple[int, int]) -> float | None:
    """The smallest patch_scale (in hundredths) whose scaled field holds `patch`; None above 1."""
    for hundredths in range(1, 101):
        room = scaled_size(field, hundredths / 100)
        if room[0] >= patch[0] and room[1] >= patch[1]:
            return hundredths / 100
    return None


def patch_problems(params: Params) -> list[str]:
    """Patches larger than the scaled field, or a whole field enlarged."""
    train, models, field = params.train, params.models, params.ingest.image_size
    problems = []
    if train.input == "patches":
        room = scaled_size(field, train.patch_scale)
        for key, names in _too_big(train, models, room).items():
            size = fit_settings(train, models.of(names[0])).image_size
            scale_fix = (
                f"raise train.patch_scale to {needed:g}, "
                if (needed := _least_scale(field, size)) is not None
                else "raise ingest.image_size, "
            )
            problems.append(
                f"{key}: {_size(size)} patches ({', '.join(names)}; train.input patches) do not fit in "
                f"the field they are cut from, ingest.image_size {_size(field)} x train.patch_scale "
                f"{train.patch_scale:g} = {_size(room)}; {scale_fix}or lower {key} to at most {_size(room)}"
            )
    else:
        for key, names in _too_big(train, models, field).items():
            size = fit_settings(train, models.of(names[0])).image_size
            problems.append(
                f"{key}: {_size(size)} ({', '.join(names)}) is larger than the field ingest keeps, "
                f"ingest.image_size {_size(field)} (train.input field): enlarging adds no detail; raise "
                f"ingest.image_size or lower {key} to at most {_size(field)}"
            )
    return problems


def shadowed_problems(train: TrainParams, models: ModelsParams) -> list[str]:
    """A shared key set away from its default that every model overrides: it changes nothing."""
    problems = []
    for key in ModelOverrides.model_fields:
        value, default = getattr(train, key), TrainParams.model_fields[key].default
        own = {name: getattr(models.of(name), key) for name in MODEL_NAMES}
        if value == default or any(v is None or v == value for v in own.values()):
            continue
        overriding = ", ".join(f"models.{name}.{key}: {v}" for name, v in own.items())
        problems.append(
            f"train.{key}: {value} reaches no model, every one sets its own ({overriding}); set those, "
            f"or set them to null to take train.{key}"
        )
    return problems


def min_epochs_problems(train: TrainParams, models: ModelsParams) -> list[str]:
    """`train.min_epochs` above a model's epochs, with validation (without it, every epoch runs)."""
    if train.validation == "none":
        return []
    short = [
        f"{name} trains {fit_settings(train, models.of(name)).epochs} "
        f"({fit_key(models.of(name), name, 'epochs')})"
        for name in MODEL_NAMES
        if train.min_epochs > fit_settings(train, models.of(name)).epochs
    ]
    if not short:
        return []
    return [
        f"train.min_epochs: {train.min_epochs} is above the epochs of a model: {', '.join(short)}; "
        "lower train.min_epochs or raise the epochs"
    ]


def model_epochs(train: TrainParams, own: ModelOverrides) -> int:
    """The epochs a model trains, counted as snapshots count them: transfer learning's phase 1 (head
    epochs) then phase 2 (`epochs`, none when no layer is fine-tuned)."""
    epochs = fit_settings(train, own).epochs
    if isinstance(own, BackboneParams) and own.weights != "none":
        return own.head_epochs + (epochs if own.fine_tune_layers else 0)
    return epochs


def other_problems(params: Params) -> list[str]:
    train, models, problems = params.train, params.models, []
    for name in MODEL_NAMES:
        own = models.of(name)
        if (
            isinstance(own, BackboneParams)
            and own.weights not in ("none", "imagenet")
            and not own.weights.lower().endswith(WEIGHTS_FILE_SUFFIXES)
        ):
            problems.append(
                f"models.{name}.weights: '{own.weights}' is neither none, imagenet nor a Keras weights "
                f"file ({', '.join(WEIGHTS_FILE_SUFFIXES)}); save the backbone's weights with "
                "`save_weights('<name>.weights.h5')`"
            )
    if params.split.strategy == "official" and params.data.source != "kaggle":
        problems.append(
            f"split.strategy: official uses the folds of the Kaggle Folds.csv, and data.source is "
            f"{params.data.source}; set data.source kaggle, or another split.strategy (patient, kfold)"
        )
    if train.snapshot_epochs:
        short = [
            f"{name} trains {model_epochs(train, models.of(name))}"
            for name in MODEL_NAMES
            if max(train.snapshot_epochs) > model_epochs(train, models.of(name))
        ]
        if short:
            problems.append(
                f"train.snapshot_epochs: epoch {max(train.snapshot_epochs)} is beyond the epochs of a model: "
                f"{', '.join(short)}; lower train.snapshot_epochs or raise those models' epochs"
            )
        ensembles = [
            f"models.{name}.seeds: {models.of(name).seeds}"
            for name in MODEL_NAMES
            if models.of(name).seeds > 1
        ]
        if ensembles:
            problems.append(
                "train.snapshot_epochs: a snapshot holds the weights of one network, and "
                f"{', '.join(ensembles)} ask for seed ensembles; choose the epochs with one network per "
                "model (seeds 1), then train the ensemble without snapshots"
            )
    return problems


def incoherences(params: Params) -> list[str]:
    """Every combination of keys that cannot run or would not do what it says, one line each."""
    return [
        *min_epochs_problems(params.train, params.models),
        *patch_problems(params),
        *shadowed_problems(params.train, params.models),
        *other_problems(params),
    ]
