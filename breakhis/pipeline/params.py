"""The schema of params.yaml, validated before any stage does heavy work.

Unknown keys and values of the wrong type are refused with an error that names the key, so a
typo in `dvc exp run -S train.epoch=3` fails at once instead of being silently ignored.

Every number is checked before work starts (`load_params`):
- the schema: every float finite (no `.inf`, `.nan`), booleans are not numbers and numbers are not
  booleans (`epochs: true` is refused, not read as 1 epoch; `flip: 1` is refused), integers are
  integers (`epochs: 3.0` or `"3"` is refused; a float key still takes `1`), each value in its
  range (generated and ingested images within the MAX_PIXELS that ingest reads), and the relations
  between keys (`train.min_epochs` at most every model's epochs, ingest's size within the generated
  images', the split sizes, the fold; across sections: breakhis.pipeline.coherence, e.g. patches that
  fit in the scaled field);
- the machine (`machine_problems`, run by `validate_params`): `ingest.workers`, `augment.workers`
  and `train.cpu_replicas` at most WORKERS_PER_CORE x the cores of this machine, and the memory
  that the image sizes need (`memory_estimates`: synthetic generation, ingest, and training each
  model at its image size x batch size) at most the memory budget: this machine's memory (its
  cgroup limit when lower), or BREAKHIS_MEMORY_GB. A size that cannot fit is refused with its
  estimate before anything is allocated. The machine is checked where the stages run, not in the
  schema: a model's stored params stay valid on a smaller machine.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from breakhis.pipeline.paths import PARAMS_FILE
from breakhis.pipeline.yaml_text import YamlError, read_yaml

ModelName = Literal["custom", "vgg19", "resnet50"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)  # each has a train.<name> section and a train stage
ENSEMBLE = "ensemble"  # the soft vote of the models, scored beside them
SCORED_MODELS = (*MODEL_NAMES, ENSEMBLE)  # what evaluate, the report and the card list
COLOUR_BASELINE = "colour_baseline"  # scored beside them: what every model must beat
EVALUATED = (*SCORED_MODELS, COLOUR_BASELINE)  # every entry of evaluate's metrics and predictions


def _not_a_boolean(value: object) -> object:
    """YAML's true/false are not numbers (pydantic's lax float would read true as 1.0)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_not_boolean", "expected a number, not a boolean (true/false)")
    return value


# Floats take ints (`learning_rate: 1`) and YAML's 1e-4 (a string to PyYAML), never true/false;
# `Section` refuses inf and NaN in every float. Ints and bools are strict: `epochs: true`,
# `epochs: 3.0`, `epochs: "3"` and `flip: 1` are refused instead of converted.
Number = Annotated[float, BeforeValidator(_not_a_boolean)]
Integer = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Fraction = Annotated[Number, Field(gt=0.0, lt=1.0)]
PositiveInt = Annotated[Integer, Field(gt=0)]
ImageSize = tuple[Annotated[Integer, Field(ge=32)], Annotated[Integer, Field(ge=32)]]
Magnification = Literal[40, 100, 200, 400]
# what a model sees of a view's colour (breakhis.modeling.input_pipeline.stain_free)
Colour = Literal["rgb", "grey", "haematoxylin"]
Seed = Annotated[Integer, Field(ge=0, le=2**32 - 1)]  # NumPy's and Keras's seeds are 32-bit

# The largest image ingest decodes (breakhis.data.images.MAX_PIXELS, equal by a test: that module
# imports this one): a generated or ingested image above it could never be read.
MAX_PIXELS = 16_000_000
MAX_UPSCALE = 1.05  # breakhis.data.images: ingest enlarges a raw image at most this much


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _under_pixel_cap(key: str, size: tuple[int, int]) -> None:
    if _pixels(size) > MAX_PIXELS:
        raise ValueError(
            f"{key}: {_size(size)} is {_pixels(size):,} pixels, over the {MAX_PIXELS:,} that ingest reads "
            "(a BreakHis field is 460x700)"
        )


class SyntheticParams(Section):
    """The embedded default dataset, generated from `seed`."""

    benign_patients: Annotated[Integer, Field(ge=2)] = Field(
        18, description="benign patients (31% of all, as in BreakHis)"
    )
    malignant_patients: Annotated[Integer, Field(ge=2)] = Field(40, description="malignant patients")
    images_per_magnification: PositiveInt = Field(
        2,
        description="mean images per patient and magnification (patients differ; per class exactly "
        "patients x this)",
    )
    image_size: ImageSize = Field(
        (230, 350),
        description="[height, width] of the generated raw PNGs (nuclei scale with it); at most 16 Mpx, and "
        "refused when generating one needs more memory than the budget (as train.image_size)",
    )
    atypical_fraction: Annotated[Number, Field(ge=0.0, lt=0.5)] = Field(
        0.15, description="share of images showing the other class's morphology, as in real slides"
    )

    @model_validator(mode="after")
    def _readable_size(self) -> SyntheticParams:
        _under_pixel_cap("data.synthetic.image_size", self.image_size)
        return self


class DataParams(Section):
    """Where the raw images come from."""

    source: Literal["synthetic", "breakhis", "kaggle"] = Field(
        "synthetic", description="synthetic | breakhis | kaggle"
    )
    path: str | None = Field(
        "data/raw",
        description="breakhis / kaggle: a BreaKHis_v1 tree (or any parent), the Kaggle folder, or a "
        ".tar.gz / .zip of either; ingest's DVC dependency, so it must exist",
    )
    magnifications: list[Magnification] = Field(
        default=[100, 200, 400], min_length=1, description="magnifications kept: any of 40, 100, 200, 400"
    )
    synthetic: SyntheticParams = SyntheticParams()

    @model_validator(mode="after")
    def _path_for_real_sources(self) -> DataParams:
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"data.path is required when data.source is '{self.source}'")
        return self


class IngestParams(Section):
    """Parse, check, de-duplicate and resize the raw images into data/ingested/."""

    image_size: ImageSize = Field(
        (230, 350),
        description="[height, width]: aspect-preserving resize, then centre crop; at most the raw images "
        "(x1.05) and 16 Mpx, and refused when ingest needs more memory than the budget (as train.image_size)",
    )
    workers: Annotated[Integer, Field(ge=0)] = Field(
        0, description="threads; 0 = one per CPU core; at most 4 x the cores"
    )
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="fail | skip: unusable images stop ingest, or are listed in rejected.csv"
    )
    png_compression: Annotated[Integer, Field(ge=0, le=9)] = Field(
        0, description="0-9 for the ingested PNGs: 0 is fastest (bigger files)"
    )
    stain_normalization: Literal["none", "macenko"] = Field(
        "none", description="none | macenko: every image mapped to one fixed reference stain (predict too)"
    )

    @model_validator(mode="after")
    def _readable_size(self) -> IngestParams:
        _under_pixel_cap("ingest.image_size", self.image_size)
        return self


class SplitParams(Section):
    """Train / validation / test by patient group."""

    strategy: Literal["patient", "kfold", "official", "image"] = Field(
        "patient",
        description="patient | kfold | official | image (image: by image, LEAKY, for comparison only)",
    )
    val_size: Fraction = Field(
        0.15, description="fraction of all images held out for validation, by patient group"
    )
    test_size: Fraction = Field(
        0.2, description="patient and image; kfold tests on 1/folds, official as published"
    )
    group_by: Literal["root", "folder"] = Field("root", description="root (numeric slide root) | folder")
    folds: Annotated[Integer, Field(ge=2)] = Field(5, description="kfold: number of patient-grouped folds")
    fold: Annotated[Integer, Field(ge=0)] = Field(
        0, description="kfold: test fold 0..folds-1; official: 0..4 = Folds.csv folds 1..5"
    )

    @model_validator(mode="after")
    def _sizes_and_fold(self) -> SplitParams:
        if self.strategy in ("patient", "image") and self.val_size + self.test_size >= 1:
            raise ValueError(
                f"split.val_size + split.test_size must be below 1 (got {self.val_size + self.test_size:g})"
            )
        if self.strategy == "kfold" and self.fold >= self.folds:
            raise ValueError(f"split.fold must be below split.folds={self.folds} (got {self.fold})")
        if self.strategy == "official" and self.fold >= 5:
            raise ValueError(f"split.fold must be 0..4 for the 5 official folds (got {self.fold})")
        return self


class AugmentParams(Section):
    """Offline augmentation of the train split only; val and test are never augmented."""

    target_ratio: Annotated[Number, Field(gt=0.0, le=1.0)] = Field(
        1.0, description="minority / majority images in train after balancing"
    )
    extra_per_image: Annotated[Number, Field(ge=0.0, le=10.0)] = Field(
        0.0, description="new images per train image of every class, before balancing"
    )
    flip: Flag = Field(True, description="horizontal / vertical flips")
    rotate90: Flag = Field(True, description="quarter turns (half turns on non-square images)")
    zoom: Annotated[Number, Field(ge=0.0, le=0.5)] = Field(
        0.0, description="max zoom-in (0.1 = crop up to 1/1.1 of each side); 0 = off"
    )
    workers: Annotated[Integer, Field(ge=0)] = Field(
        0, description="processes; 0 = one per CPU core; at most 4 x the cores"
    )

    @model_validator(mode="before")
    @classmethod
    def _colour_moved_to_training(cls, data: object) -> object:
        """Offline colour jitter touched only the balancing copies (mostly one class): a class cue."""
        moved = sorted({"hsv_jitter", "hed_jitter"} & set(data if isinstance(data, dict) else ()))
        if moved:
            raise ValueError(
                f"augment.{moved[0]} moved to train.{moved[0]}: colour augmentation now runs on-line "
                "for every train image of both classes (offline it reached only the balancing copies)"
            )
        return data


class ModelOverrides(Section):
    """Per-model values that override the shared `train.*` ones when set."""

    image_size: ImageSize | None = Field(None, description="overrides train.image_size")
    epochs: PositiveInt | None = Field(None, description="overrides train.epochs")
    batch_size: PositiveInt | None = Field(None, description="overrides train.batch_size")
    learning_rate: Annotated[Number, Field(gt=0.0)] | None = Field(
        None, description="overrides train.learning_rate"
    )
    patches_per_image: PositiveInt | None = Field(None, description="overrides train.patches_per_image")
    patience: PositiveInt | None = Field(None, description="overrides train.patience")


class CustomCNNParams(ModelOverrides):
    """The 4-block CNN trained from scratch; null keys take the shared `train.*` value."""

    epochs: PositiveInt | None = Field(
        30, description="overrides train.epochs (cheap: about 1 s per epoch on 2 CPU cores)"
    )
    patience: PositiveInt | None = Field(10, description="overrides train.patience")
    filters: list[PositiveInt] = Field(
        default=[16, 32, 64, 128], min_length=4, max_length=4, description="convolutions per block"
    )
    dropout: Annotated[Number, Field(ge=0.0, lt=1.0)] = Field(0.3, description="before the output unit")
    batch_norm: Flag = Field(True, description="BatchNorm after every convolution")


class BackboneParams(ModelOverrides):
    """A keras.applications backbone with a dropout + sigmoid head; null keys take `train.*`."""

    weights: str = Field(
        "none", description="none | imagenet | path to a Keras weights file (.weights.h5, .h5, .hdf5, .keras)"
    )
    dropout: Annotated[Number, Field(ge=0.0, lt=1.0)] = Field(0.3, description="before the output unit")
    head_epochs: Annotated[Integer, Field(ge=0)] = Field(
        3, description="phase 1 (frozen backbone, pretrained weights only): epochs of the head"
    )
    fine_tune_layers: Annotated[Integer, Field(ge=0)] = Field(
        10, description="phase 2: the top layers with weights unfrozen (BatchNorm not counted)"
    )
    fine_tune_learning_rate: Annotated[Number, Field(gt=0.0)] = Field(
        1e-5, description="phase 2's learning rate"
    )


class VGG19Params(BackboneParams):
    """VGG19 (with BatchNorm when trained from scratch); null keys take `train.*`."""

    epochs: PositiveInt | None = Field(5, description="overrides train.epochs (the slowest model on a CPU)")
    learning_rate: Annotated[Number, Field(gt=0.0)] | None = Field(
        1e-4, description="overrides train.learning_rate"
    )
    fine_tune_layers: Annotated[Integer, Field(ge=0)] = Field(
        4, description="phase 2: the top layers with weights unfrozen (4: block5's convolutions)"
    )


class ResNet50Params(BackboneParams):
    """ResNet50; null keys take `train.*`."""

    fine_tune_layers: Annotated[Integer, Field(ge=0)] = Field(
        10, description="phase 2: the top layers with weights unfrozen (10: the convolutions of stage conv5)"
    )


class TrainParams(Section):
    """Shared by the three train stages; `train.<model>.*` overrides some keys per model."""

    seed: Seed | None = Field(
        None,
        description="training randomness only (initialisation, batch order, augmentation, patches); null = "
        "`seed`. Vary it alone to measure seed-to-seed spread on one split (commands.seed_spread)",
    )
    image_size: ImageSize = Field(
        (64, 64),
        description="model input: the field resized (field) or the patch size (patches); at most "
        "ingest.image_size (field) or ingest.image_size x patch_scale (patches); refused when "
        "training a model at this size and batch_size needs more memory than the budget: this machine's "
        "memory, or BREAKHIS_MEMORY_GB (GB) when set",
    )
    input: Literal["field", "patches"] = Field(
        "patches",
        description="field | patches: the whole field resized to image_size, or image_size patches of the "
        "field scaled by patch_scale (random in training, a covering grid averaged in evaluate and predict)",
    )
    patch_scale: Annotated[Number, Field(gt=0.0, le=1.0)] = Field(
        0.5, description="the ingested field is scaled by this before patches are cut"
    )
    patches_per_image: PositiveInt = Field(1, description="random patches per train image and epoch")
    colour: Colour = Field(
        "rgb",
        description="what the models see of a view's colour: rgb | grey (luminance) | haematoxylin (the "
        "haematoxylin channel of colour deconvolution, as a grey image): without stain colour a model "
        "cannot lean on a slide's stain; recorded in the model, so predict and Grad-CAM see the same",
    )
    validation: Literal["split", "none"] = Field(
        "split",
        description="split: early stopping and the kept epoch chosen on the validation split, as are "
        "evaluate's temperatures, thresholds and weights; none: train on train + val for exactly `epochs` "
        "(no early stopping; lr_schedule constant or cosine), the epochs and the decision rule chosen by "
        "cross-validation (small data: a few validation patients are noise)",
    )
    epochs: PositiveInt = Field(8, description="maximum epochs (train.validation none: exactly these)")
    snapshot_epochs: list[PositiveInt] = Field(
        [],
        description="train.validation none: also keep the weights after these epochs (1-based, up to each "
        "model's epochs) and score each on test (plots/evaluate/epochs/): a cross-validation summary "
        "then gives the pooled AUC per epoch, to choose the epochs",
    )
    batch_size: PositiveInt = Field(32, description="images (or patches) per batch and replica")
    learning_rate: Annotated[Number, Field(gt=0.0)] = Field(
        1e-3, description="Adam's learning rate (transfer learning's phase 2: fine_tune_learning_rate)"
    )
    patience: PositiveInt = Field(
        4, description="epochs without improvement of `monitor` before early stopping"
    )
    monitor: Literal["val_loss", "val_auc"] = Field(
        "val_auc",
        description="val_auc | val_loss: picks the best epoch (its weights are saved) and stops early",
    )
    min_epochs: Annotated[Integer, Field(ge=0)] = Field(
        3,
        description="epochs before early stopping and the best-epoch choice start; at most every model's "
        "epochs",
    )
    lr_schedule: Literal["constant", "plateau", "cosine"] = Field(
        "plateau", description="constant | plateau (halve on a plateau of `monitor`) | cosine"
    )
    class_weights: Flag = Field(True, description="balanced class weights (on top of augment's balancing)")
    cache: Flag | Literal["auto"] = Field(
        "auto", description="keep decoded images in memory after epoch 1: true | false | auto (under 2 GiB)"
    )
    online_augmentation: Flag = Field(
        True, description="random flips / rotations every epoch (phase 1 then recomputes backbone features)"
    )
    hed_jitter: Annotated[Number, Field(ge=0.0, le=0.5)] = Field(
        0.1, description="on-line H&E stain jitter, every train image of both classes; 0 = off"
    )
    hsv_jitter: Annotated[Number, Field(ge=0.0, le=0.5)] = Field(
        0.05, description="on-line hue / saturation / value jitter, likewise"
    )
    stain_transfer: Flag = Field(
        False,
        description="on-line stain transfer: every train image takes the H&E stain statistics of another "
        "image of its batch (other patients, both classes), before the jitters",
    )
    deterministic: Flag = Field(True, description="op determinism: same params + seed -> same metrics on CPU")
    mixed_precision: Flag = Field(
        False, description="float16 compute with a float32 output layer (GPU runners)"
    )
    jit_compile: Flag = Field(False, description="XLA compilation")
    cpu_replicas: Annotated[Integer, Field(ge=0)] = Field(
        0,
        description="more than 1: mirror over that many logical CPUs (tests the multi-GPU path); at most 4 x "
        "the cores",
    )
    custom: CustomCNNParams = CustomCNNParams()
    vgg19: VGG19Params = VGG19Params()
    resnet50: ResNet50Params = ResNet50Params()

    @model_validator(mode="after")
    def _min_epochs_within_epochs(self) -> TrainParams:
        """An epoch before min_epochs can neither stop training nor be kept: above a model's epochs,
        min_epochs would leave only the last epoch to keep. Without validation, every epoch runs."""
        if self.snapshot_epochs and self.validation == "split":
            raise ValueError(
                "train.snapshot_epochs: with train.validation split the kept epoch is chosen on the "
                "validation split; snapshots are for train.validation none"
            )
        if len(set(self.snapshot_epochs)) != len(self.snapshot_epochs):
            raise ValueError(f"train.snapshot_epochs: {self.snapshot_epochs} names an epoch twice")
        if self.validation == "none":
            if self.lr_schedule == "plateau":
                raise ValueError(
                    "train.lr_schedule: plateau halves the rate on a plateau of the validation metric, and "
                    "train.validation is none; use constant or cosine"
                )
            return self
        short = [
            f"{name} trains {fit_settings(self, name).epochs} ({_key(self, name, 'epochs')})"
            for name in MODEL_NAMES
            if self.min_epochs > fit_settings(self, name).epochs
        ]
        if short:
            raise ValueError(
                f"train.min_epochs: {self.min_epochs} is above the epochs of a model: {', '.join(short)}; "
                "lower train.min_epochs or raise the epochs"
            )
        return self


@dataclass(frozen=True)
class FitSettings:
    """Shared `train.*` values with the model's own overrides applied."""

    image_size: tuple[int, int]
    epochs: int
    batch_size: int
    learning_rate: float
    patches_per_image: int
    patience: int


def training_seed(params: Params) -> int:
    """`train.seed` when set, else the global `seed`."""
    return params.seed if params.train.seed is None else params.train.seed


def fit_settings(train: TrainParams, model_name: str) -> FitSettings:
    """`train.<model>.<key>` overrides `train.<key>` when set."""
    own: ModelOverrides = getattr(train, model_name)
    return FitSettings(
        image_size=own.image_size or train.image_size,
        epochs=own.epochs or train.epochs,
        batch_size=own.batch_size or train.batch_size,
        learning_rate=own.learning_rate or train.learning_rate,
        patches_per_image=own.patches_per_image or train.patches_per_image,
        patience=own.patience or train.patience,
    )


class EvaluateParams(Section):
    """Every model and the ensemble on the test split; the decision rule chosen on validation."""

    threshold: Fraction | Literal["youden", "f1"] = Field(
        0.5, description="a fixed probability, or youden | f1: chosen per model on the validation split"
    )
    ensemble: Literal["mean", "val_auc"] = Field(
        "mean", description="soft vote: mean | val_auc (weights by validation AUC above chance)"
    )
    members: list[ModelName] = Field(
        list(get_args(ModelName)),
        min_length=1,
        description="the models of the soft vote (a cross-validation summary recommends them, chosen out "
        "of fold)",
    )

    @model_validator(mode="after")
    def _members_once(self) -> EvaluateParams:
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"evaluate.members: {self.members} names a model twice")
        return self

    bootstrap_resamples: Annotated[Integer, Field(ge=100, le=100_000)] = Field(
        1000, description="confidence intervals resample whole patient groups (at most 100000)"
    )
    test_time_flips: Flag = Field(
        False, description="average every view with its mirrored copies (evaluate and predict)"
    )
    confidence: Fraction = Field(0.95, description="of the bootstrap intervals")
    calibration: Literal["none", "temperature"] = Field(
        "none",
        description="none | temperature: divide each model's logits by a T fitted on validation (ranks and "
        "the 0.5 decision unchanged; evaluate and predict)",
    )


class Params(Section):
    """params.yaml: every stage reads its own section; dvc.yaml lists exactly the keys each stage uses."""

    seed: Seed = Field(42, description="the run's seed: data, split, augmentation, training")
    task: Literal["binary", "subtype"] = Field(
        "binary",
        description="binary: benign vs malignant | subtype: the eight tumour subtypes (softmax; the "
        "benign/malignant call derived from the four malignant subtypes' probabilities)",
    )
    data: DataParams = DataParams()
    ingest: IngestParams = IngestParams()
    split: SplitParams = SplitParams()
    augment: AugmentParams = AugmentParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _nothing_chosen_on_trained_images(self) -> Params:
        """With train.validation none the validation split is trained on: nothing may be chosen there."""
        if self.train.validation == "split":
            return self
        evaluate = self.evaluate
        chosen = {  # key: (its value, chosen on validation?, what to set instead)
            "evaluate.threshold": (evaluate.threshold, isinstance(evaluate.threshold, str), "a probability"),
            "evaluate.calibration": (evaluate.calibration, evaluate.calibration != "none", "none"),
            "evaluate.ensemble": (evaluate.ensemble, evaluate.ensemble != "mean", "mean"),
        }
        for key, (value, on_validation, instead) in chosen.items():
            if on_validation:
                raise ValueError(
                    f"{key}: {value} is chosen on the validation split, which train.validation: none "
                    f"trains on; set {instead} (the cross-validation summary recommends them, chosen out "
                    "of fold)"
                )
        return self

    @model_validator(mode="after")
    def _ingest_within_the_generated_images(self) -> Params:
        """Ingest enlarges a raw image at most MAX_UPSCALE times: bigger, it would refuse every one."""
        if self.data.source == "synthetic":
            raw, size = self.data.synthetic.image_size, self.ingest.image_size
            if max(size[0] / raw[0], size[1] / raw[1]) > MAX_UPSCALE:
                raise ValueError(
                    f"ingest.image_size: {_size(size)} is larger than the generated images "
                    f"(data.synthetic.image_size {_size(raw)}): ingest would refuse every one"
                )
        return self

    @model_validator(mode="after")
    def _coherent(self) -> Params:
        """The rules between keys of different sections (breakhis.pipeline.coherence): a combination
        that cannot run, or would not do what it says, is refused here, before any stage works."""
        from breakhis.pipeline.coherence import incoherences  # it reads these classes: imported once built

        problems = incoherences(self)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self


class ParamsError(ValueError):
    """params.yaml is unreadable or does not match the schema; the message names the key."""


def _key_of(location: tuple[int | str, ...]) -> str:
    """The dotted key of an error's location, without pydantic's tags for the members of a union
    (`evaluate.threshold`, not `evaluate.threshold.literal['youden','f1']`)."""
    parts: list[str] = []
    model: type[BaseModel] | None = Params
    for part in location:
        if isinstance(part, int):
            parts.append(str(part))
        elif model is not None:  # a key of a section, or an unknown one
            parts.append(part)
            field = model.model_fields.get(part)
            annotation = field.annotation if field else None
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return ".".join(parts)


def _describe(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid params"]
    for issue in error.errors():
        key = _key_of(issue["loc"]) or "(top level)"
        if issue["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif issue["type"] == "value_error" and isinstance(issue.get("input"), dict):
            # a relation between keys, checked on a whole section: the message names the keys
            lines.append(f"  {issue['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {issue['msg']} (got {issue.get('input')!r})")
    return "\n".join(lines)


# ---- what this machine can hold -----------------------------------------------------------------
# Checked by validate_params where a stage runs (not in the schema, so that the params a model was
# trained with stay valid on a smaller machine). Estimates are of resident memory, measured on this
# project's code; they are about right (within some 30%), not bounds: the budget refuses sizes that
# cannot fit, it does not promise that the others will.

WORKERS_PER_CORE = 4  # workers and CPU replicas per core: beyond, more only multiplies memory
MEMORY_VARIABLE = "BREAKHIS_MEMORY_GB"  # the memory budget in GB, instead of this machine's memory
UNKNOWN_MACHINE_MEMORY = 16e9  # the budget where the machine's memory cannot be read
GB = 1e9

TENSORFLOW_BYTES = 0.8e9  # a training process with its model built, before the first batch (0.7-0.85 GB)
PYTHON_BYTES = 0.1e9  # a data stage's process: Python, NumPy, OpenCV
SYNTHETIC_BYTES_PER_PIXEL = 110  # rendering one synthetic image: float32 maps (90-110 B measured)
RAW_BYTES_PER_PIXEL = 6  # ingest: a decoded raw image and its RGB copy
INGEST_BYTES_PER_PIXEL = {"none": 6, "macenko": 160}  # resized image and PNG; Macenko's float64 maps (147 B)
BREAKHIS_PIXELS = 460 * 700  # a raw image of a real source
PATCH_SHUFFLE = 8192  # patches held for shuffling: breakhis.modeling.input_pipeline.SHUFFLE_LIMIT
# The backbones: float32 activations per input pixel that a training step keeps for backpropagation
# (the layers' outputs, counted with Keras: a test checks them) and parameters (x4 in training:
# weights, gradients and Adam's two moments). VGG19 from scratch has BatchNorm after every convolution.
BACKBONE_SIZES = {
    ("vgg19", "none"): (922.0, 20_040_896),
    ("vgg19", "pretrained"): (330.0, 20_024_384),
    ("resnet50", "none"): (742.0, 23_587_712),
    ("resnet50", "pretrained"): (742.0, 23_587_712),
}


def custom_cnn_size(filters: list[int], batch_norm: bool) -> tuple[float, int]:
    """Activations per input pixel and parameters of breakhis.modeling.architectures.build_custom_cnn."""
    activations, parameters, channels = 6.0, filters[-1] + 1, 3  # input and rescaled copy; the head
    for block, width in enumerate(filters):
        per_pixel = width * (3 if batch_norm else 2) + width / 4  # convolution, [BatchNorm,] ReLU, pool
        activations += per_pixel / 4**block  # each block sees a quarter of the pixels
        parameters += 9 * channels * width + (4 * width if batch_norm else width)
        channels = width
    return activations, parameters


@dataclass(frozen=True)
class MemoryEstimate:
    """What one process of a stage needs for one size (bytes), and the keys that set it."""

    keys: str  # the keys to change, e.g. "train.image_size and train.batch_size"
    task: str  # e.g. "training resnet50 on 64x64 images, 32 per batch"
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def describe(self) -> str:
        parts = ", ".join(f"{name} {_gb(size)}" for name, size in self.parts.items())
        return f"{self.task} needs about {_gb(self.total)} ({parts})"


def _gb(size: float) -> str:
    return f"{size / GB:,.1f} GB" if size >= 0.1 * GB else f"{size / 1e6:.0f} MB"


def cores() -> int:
    return os.cpu_count() or 1


def _key(train: TrainParams, name: str, key: str) -> str:
    return f"train.{name}.{key}" if getattr(getattr(train, name), key) is not None else f"train.{key}"


def training_memory(train: TrainParams, name: str) -> MemoryEstimate:
    """Training the named model: its weights and optimizer state, the activations of one batch at
    the model's image size, the input batches in flight, and the patch shuffle buffer."""
    settings = fit_settings(train, name)
    pixels = _pixels(settings.image_size)
    batch = settings.batch_size * max(1, train.cpu_replicas)  # every replica holds its own batch
    if name == "custom":
        activations, parameters = custom_cnn_size(train.custom.filters, train.custom.batch_norm)
    else:
        own: BackboneParams = getattr(train, name)
        activations, parameters = BACKBONE_SIZES[name, "none" if own.weights == "none" else "pretrained"]
    parts = {
        "TensorFlow": TENSORFLOW_BYTES,
        "weights and optimizer": 16.0 * parameters,
        "activations": 4.0 * activations * batch * pixels,
        "input batches": 4 * batch * pixels * 3 * 4.0,  # float32, prefetched, augmented copies
    }
    if train.input == "patches":
        parts["patch shuffle buffer"] = (PATCH_SHUFFLE + settings.patches_per_image) * pixels * 3.0
    keys = f"{_key(train, name, 'image_size')} and {_key(train, name, 'batch_size')}"
    if name == "custom" and train.custom.filters != CustomCNNParams().filters:
        keys = keys.replace(" and ", ", ") + " and train.custom.filters"
    task = f"training {name} on {_size(settings.image_size)} images, {batch} per batch"
    return MemoryEstimate(keys, task, parts)


def ingest_memory(params: Params) -> MemoryEstimate:
    """Ingest: each worker thread decodes a raw image and resizes (and stain-normalises) it."""
    workers = params.ingest.workers or cores()
    synthetic = params.data.source == "synthetic"
    raw = _pixels(params.data.synthetic.image_size) if synthetic else BREAKHIS_PIXELS
    size = params.ingest.image_size
    per_image = RAW_BYTES_PER_PIXEL * raw + INGEST_BYTES_PER_PIXEL[
        params.ingest.stain_normalization
    ] * _pixels(size)
    parts = {"Python": PYTHON_BYTES, f"{workers} workers": workers * per_image}
    return MemoryEstimate("ingest.image_size", f"ingesting at {_size(size)} on {workers} workers", parts)


def synthetic_memory(synthetic: SyntheticParams) -> MemoryEstimate:
    """Generating the synthetic dataset: one image at a time."""
    size = synthetic.image_size
    parts = {"Python": PYTHON_BYTES, "one image": SYNTHETIC_BYTES_PER_PIXEL * float(_pixels(size))}
    return MemoryEstimate("data.synthetic.image_size", f"generating {_size(size)} images", parts)


def memory_estimates(params: Params) -> list[MemoryEstimate]:
    """Every process the params size: generation (synthetic source), ingest, each model's training."""
    estimates = [synthetic_memory(params.data.synthetic)] if params.data.source == "synthetic" else []
    estimates.append(ingest_memory(params))
    return estimates + [training_memory(params.train, name) for name in MODEL_NAMES]


def machine_memory() -> float | None:
    """This machine's memory in bytes (its cgroup's limit when lower); None when unknown."""
    total: float | None = None
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not POSIX
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # cgroup v2 says "max" when unlimited
            total = min(total, float(text)) if total else float(text)
    return total


def memory_budget() -> tuple[float, str]:
    """The memory a stage may plan for, in bytes, and where that figure comes from."""
    text = os.environ.get(MEMORY_VARIABLE, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ParamsError(
                f"{MEMORY_VARIABLE}={text!r}: expected the memory budget in GB, a number above 0"
            )
        return value * GB, f"set by {MEMORY_VARIABLE}"
    found = machine_memory()
    if found is None:
        return UNKNOWN_MACHINE_MEMORY, f"this machine's memory is unknown; set {MEMORY_VARIABLE}"
    return found, f"this machine's memory; {MEMORY_VARIABLE} sets another"


def machine_problems(params: Params) -> list[tuple[str, str]]:
    """(key, problem) for each value this machine cannot run: workers or CPU replicas beyond
    WORKERS_PER_CORE per core, and sizes whose memory estimate exceeds the budget."""
    problems = []
    cap = WORKERS_PER_CORE * cores()
    for key, value, zero in (
        ("ingest.workers", params.ingest.workers, "0 = one thread per core"),
        ("augment.workers", params.augment.workers, "0 = one process per core"),
        ("train.cpu_replicas", params.train.cpu_replicas, "0 = no mirroring"),
    ):
        if value > cap:
            problems.append(
                (
                    key,
                    f"{value} is above {WORKERS_PER_CORE} x the {cores()} cores of this machine ({cap}): "
                    f"more only multiplies memory ({zero})",
                )
            )
    budget, origin = memory_budget()
    for estimate in memory_estimates(params):
        if estimate.total > budget:
            problems.append(
                (
                    estimate.keys,
                    f"{estimate.describe()}, over the memory budget of {_gb(budget)} ({origin})",
                )
            )
    return problems


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ParamsError naming the file and each bad key."""
    return validate_params(read_params(path), path)


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as a mapping of sections, not yet validated (the YAML rules of yaml_text applied);
    ParamsError naming the file when it cannot be read or is not a mapping."""
    try:
        raw = read_yaml(path)
    except YamlError as exc:
        hint = " (run the stage from the project root)" if not path.exists() else ""
        raise ParamsError(f"{exc}{hint}") from None
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{path}: expected a mapping of sections (seed, data, ...), got {type(raw).__name__}"
        )
    return raw


def validate_params(raw: dict[str, Any], source: Path, *, machine: bool = True) -> Params:
    """Validate a params mapping, and (`machine`) that this machine can run it; raise ParamsError
    naming each bad key and `source`."""
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe(exc, source)) from None
    problems = machine_problems(params) if machine else []
    if problems:
        lines = [
            f"{source}: too much for this machine",
            *(f"  {key}: {problem}" for key, problem in problems),
        ]
        raise ParamsError("\n".join(lines))
    return params


# ---- params.yaml, generated from this schema ----------------------------------------------------

COMMENT_COLUMN = 29  # where the comments of params.yaml start
LINE_LENGTH = 110


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text if "e" not in text else f"{value:.12f}".rstrip("0")  # PyYAML reads 1e-05 as a string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    return str(value)


def _commented(code: str, comment: str | None, indent: str) -> list[str]:
    """`code` with `comment` after it at COMMENT_COLUMN, wrapped onto comment lines below."""
    if not comment:
        return [code]
    lines: list[str] = []
    column = max(COMMENT_COLUMN, len(code) + 2)
    words = comment.split()
    current = code.ljust(column) + "#"
    for word in words:
        if len(current) + 1 + len(word) > LINE_LENGTH and not current.endswith("#"):
            lines.append(current)
            current = " " * column + "#"
        current += " " + word
    return [*lines, current]


def _render_section(section: BaseModel, indent: str) -> list[str]:
    lines = []
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        if isinstance(value, BaseModel):
            lines += _commented(f"{indent}{key}:", type(value).__doc__, indent)
            lines += _render_section(value, indent + "  ")
        else:
            lines += _commented(f"{indent}{key}: {_yaml_value(value)}", field.description, indent)
    return lines


def render_params(params: Params | None = None) -> str:
    """params.yaml as the schema defines it: every key with its default (or `params`' value) and
    its description as a comment. The committed params.yaml is exactly this (a test checks it)."""
    params = Params() if params is None else params
    header = [
        "# Generated from the schema in breakhis/pipeline/params.py (`python -m breakhis.pipeline.params`):",
        "# edit the schema, not this file, to change a default or a description. Every stage reads its",
        "# own section; dvc.yaml lists exactly the keys each stage depends on.",
    ]
    body: list[str] = []
    for key, field in Params.model_fields.items():
        value = getattr(params, key)
        if isinstance(value, BaseModel):
            body += ["", *_commented(f"{key}:", type(value).__doc__, "")]
            body += _render_section(value, "  ")
        else:
            body += _commented(f"{key}: {_yaml_value(value)}", field.description, "")
    return "\n".join([*header, *body]) + "\n"


if __name__ == "__main__":
    from breakhis.pipeline.cli import command_parser

    command_parser("breakhis.pipeline.params", "Write params.yaml from the schema's defaults.").parse_args()
    PARAMS_FILE.write_text(render_params())
    print(f"wrote {PARAMS_FILE} from the schema's defaults")
