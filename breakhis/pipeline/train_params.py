"""The train and models sections of the params schema (breakhis.pipeline.params): `train`, the keys
the three train stages share; `models`, each model's own section of overrides and settings (a train
stage depends on `train` and its own `models.<model>` only); the fit settings a model trains with;
and the move of the per-model sections out of `train` (refused in params, upgraded in recorded ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from breakhis.pipeline.param_types import (
    MODEL_NAMES,
    Colour,
    Flag,
    ImageSize,
    Integer,
    Number,
    PositiveInt,
    Section,
    Seed,
)


class ModelOverrides(Section):
    """Per-model values (`models.<model>.*`) that override the shared `train.*` ones when set."""

    image_size: ImageSize | None = Field(None, description="overrides train.image_size")
    epochs: PositiveInt | None = Field(None, description="overrides train.epochs")
    batch_size: PositiveInt | None = Field(None, description="overrides train.batch_size")
    learning_rate: Annotated[Number, Field(gt=0.0)] | None = Field(
        None, description="overrides train.learning_rate"
    )
    patches_per_image: PositiveInt | None = Field(None, description="overrides train.patches_per_image")
    patience: PositiveInt | None = Field(None, description="overrides train.patience")


class ModelSection(ModelOverrides):
    """A model's own section: its overrides of `train.*`, and what is the model's alone."""

    seeds: PositiveInt = Field(
        1,
        description="above 1, a seed ensemble: that many networks (training seeds s, s + 1, ...; s: "
        "train.seed, else seed) saved as one model, the mean of their outputs; that many times the "
        "training time and file size",
    )


class CustomCNNParams(ModelSection):
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


class BackboneParams(ModelSection):
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
    """Shared by the three train stages; `models.<model>.*` overrides some keys per model."""

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
    steps_per_epoch: PositiveInt | None = Field(
        None,
        description="null = every batch of the train split each epoch; an integer caps every epoch of every "
        "phase at that many batches (Keras steps_per_epoch; the next epoch goes on where it stopped): a "
        "smoke run or a timing run on the full data (benchmarks/full_size.py); validation still sees the "
        "whole split",
    )
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

    @model_validator(mode="before")
    @classmethod
    def _per_model_settings_moved(cls, data: object) -> object:
        """`train.<model>` moved to `models.<model>`: refused with its new home, never ignored."""
        if isinstance(data, dict) and (moved := [name for name in MODEL_NAMES if name in data]):
            raise ValueError("\n  ".join(moved_key_message(name, data[name]) for name in moved))
        return data

    @model_validator(mode="after")
    def _snapshots_and_schedule_without_validation(self) -> TrainParams:
        """Snapshots are for train.validation none; without validation, nothing plateaus."""
        if self.snapshot_epochs and self.validation == "split":
            raise ValueError(
                "train.snapshot_epochs: with train.validation split the kept epoch is chosen on the "
                "validation split; snapshots are for train.validation none"
            )
        if len(set(self.snapshot_epochs)) != len(self.snapshot_epochs):
            raise ValueError(f"train.snapshot_epochs: {self.snapshot_epochs} names an epoch twice")
        if self.validation == "none" and self.lr_schedule == "plateau":
            raise ValueError(
                "train.lr_schedule: plateau halves the rate on a plateau of the validation metric, and "
                "train.validation is none; use constant or cosine"
            )
        return self


class ModelsParams(Section):
    """Each model's own settings, one section per model: its train stage depends on `train` and its
    own section only, so a change to one model's settings retrains that model alone."""

    custom: CustomCNNParams = CustomCNNParams()
    vgg19: VGG19Params = VGG19Params()
    resnet50: ResNet50Params = ResNet50Params()

    def of(self, name: str) -> CustomCNNParams | BackboneParams:
        """The named model's section."""
        own: CustomCNNParams | BackboneParams = getattr(self, name)
        return own


@dataclass(frozen=True)
class FitSettings:
    """Shared `train.*` values with the model's own overrides applied."""

    image_size: tuple[int, int]
    epochs: int
    batch_size: int
    learning_rate: float
    patches_per_image: int
    patience: int


def fit_settings(train: TrainParams, own: ModelOverrides) -> FitSettings:
    """`models.<model>.<key>` (the model's section, `own`) overrides `train.<key>` when set."""
    return FitSettings(
        image_size=own.image_size or train.image_size,
        epochs=own.epochs or train.epochs,
        batch_size=own.batch_size or train.batch_size,
        learning_rate=own.learning_rate or train.learning_rate,
        patches_per_image=own.patches_per_image or train.patches_per_image,
        patience=own.patience or train.patience,
    )


def fit_key(own: ModelOverrides, name: str, key: str) -> str:
    """The key that sets a model's fit setting: its own `models.<name>.<key>`, or the shared one."""
    return f"models.{name}.{key}" if getattr(own, key) is not None else f"train.{key}"


# ---- the per-model sections' move out of train ----------------------------------------------------


def moved_key_message(name: str, section: object) -> str:
    """The error for a `train.<model>` section in params: the key, and where it lives now."""
    first = next(iter(section), None) if isinstance(section, dict) and section else None
    key = f"{name}.{first}" if first is not None else name
    return f"train.{key}: the per-model settings moved to models.{name} (models.{key})"


def upgrade_recorded(params: dict[str, Any]) -> dict[str, Any]:
    """RECORDED params (an older experiment's params.yaml, a model file's description) in today's
    layout: each `train.<model>` section moved to `models.<model>`. Never for the user's own params,
    which the schema refuses in the old layout (naming the new key)."""
    train = params.get("train")
    if not isinstance(train, dict) or not any(name in train for name in MODEL_NAMES):
        return params
    recorded = params.get("models")
    models = dict(recorded) if isinstance(recorded, dict) else {}
    for name in MODEL_NAMES:
        if name in train:  # a `models.<model>` already there (a hand-merged file) is today's: it stays
            models.setdefault(name, train[name])
    return {
        **params,
        "train": {key: value for key, value in train.items() if key not in MODEL_NAMES},
        "models": models,
    }
