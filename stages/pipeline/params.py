"""The schema of params.yaml, validated before any stage does heavy work.

Unknown keys and values of the wrong type are refused with an error that names the key, so a
typo in `dvc exp run -S train.epoch=3` fails at once instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stages.pipeline.paths import PARAMS_FILE

MODEL_NAMES = ("custom", "vgg19", "resnet50")  # each has a train.<name> section and a train stage
ENSEMBLE = "ensemble"  # the soft vote of the models, scored beside them
SCORED_MODELS = (*MODEL_NAMES, ENSEMBLE)  # what evaluate, the report and the card list
COLOUR_BASELINE = "colour_baseline"  # scored beside them: what every model must beat
EVALUATED = (*SCORED_MODELS, COLOUR_BASELINE)  # every entry of evaluate's metrics and predictions

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
ImageSize = tuple[Annotated[int, Field(ge=32)], Annotated[int, Field(ge=32)]]
Magnification = Literal[40, 100, 200, 400]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(Section):
    benign_patients: Annotated[int, Field(ge=2)] = 12
    malignant_patients: Annotated[int, Field(ge=2)] = 26
    images_per_magnification: PositiveInt = 3  # mean per patient; per class exactly patients x this
    image_size: ImageSize = (230, 350)
    atypical_fraction: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.15  # images with the other class's look


class DataParams(Section):
    source: Literal["synthetic", "breakhis", "kaggle"] = "synthetic"
    path: str | None = "data/raw"  # tree, folder or archive; ingest's DVC dependency (must exist)
    magnifications: list[Magnification] = Field(default=[40, 100, 200, 400], min_length=1)
    synthetic: SyntheticParams = SyntheticParams()

    @model_validator(mode="after")
    def _path_for_real_sources(self) -> DataParams:
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"data.path is required when data.source is '{self.source}'")
        return self


class IngestParams(Section):
    image_size: ImageSize = (230, 350)
    workers: Annotated[int, Field(ge=0)] = 0  # 0: one per CPU core
    on_error: Literal["fail", "skip"] = "fail"  # unusable images: stop, or leave out (rejected.csv)
    png_compression: Annotated[int, Field(ge=0, le=9)] = 0  # of the ingested PNGs; 0 = fastest
    # every image mapped to one fixed reference H&E appearance (stages/data/stain.py); predict too
    stain_normalization: Literal["none", "macenko"] = "none"


class SplitParams(Section):
    strategy: Literal["patient", "kfold", "official", "image"] = "patient"
    val_size: Fraction = 0.15  # of all images, held out by patient group (every strategy)
    test_size: Fraction = 0.2  # patient and image; kfold tests one fold, official as published
    group_by: Literal["root", "folder"] = "root"
    folds: Annotated[int, Field(ge=2)] = 5  # kfold
    fold: Annotated[int, Field(ge=0)] = 0  # kfold and official: the test fold, 0-based

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
    target_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # minority / majority after
    extra_per_image: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0  # new images per image, every class
    flip: bool = True
    rotate90: bool = True
    zoom: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    workers: Annotated[int, Field(ge=0)] = 0  # 0: one per CPU core

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

    image_size: ImageSize | None = None
    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    learning_rate: Annotated[float, Field(gt=0.0)] | None = None
    patches_per_image: PositiveInt | None = None  # fewer for the slow backbones on a CPU
    patience: PositiveInt | None = None


class CustomCNNParams(ModelOverrides):
    filters: list[PositiveInt] = Field(default=[16, 32, 64, 128], min_length=4, max_length=4)
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.3
    batch_norm: bool = True


class BackboneParams(ModelOverrides):
    weights: str = "none"  # none | imagenet | path to a weights file
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.3
    head_epochs: Annotated[int, Field(ge=0)] = 3
    fine_tune_layers: Annotated[int, Field(ge=0)] = 10  # top layers that hold weights (BatchNorm not counted)
    fine_tune_learning_rate: Annotated[float, Field(gt=0.0)] = 1e-5


class TrainParams(Section):
    # weight initialisation, batch order, on-line augmentation and patch sampling; None: `seed`.
    # Varying only this retrains on the same split: the spread is training noise (stages.seed_spread)
    seed: Annotated[int, Field(ge=0)] | None = None
    image_size: ImageSize = (64, 64)
    epochs: PositiveInt = 8
    batch_size: PositiveInt = 32
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3
    patience: PositiveInt = 4
    monitor: Literal["val_loss", "val_auc"] = "val_loss"  # early stopping and best epoch
    lr_schedule: Literal["constant", "plateau", "cosine"] = "plateau"
    class_weights: bool = True
    # keep decoded images in memory after the first epoch: auto = when they take under 2 GiB
    cache: bool | Literal["auto"] = "auto"
    online_augmentation: bool = False  # random flips / rotations on the fly (recomputes frozen features)
    hed_jitter: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0  # on-line H&E stain jitter, every train image
    hsv_jitter: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0  # on-line hue/saturation/value jitter
    # field: the whole field resized to image_size; patches: image_size patches of the field scaled
    # by patch_scale (random in training, a covering grid averaged in evaluate and predict)
    input: Literal["field", "patches"] = "field"
    patch_scale: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    patches_per_image: PositiveInt = 4  # random patches per image and epoch
    min_epochs: Annotated[int, Field(ge=0)] = 0  # epochs before early stopping and best-epoch choice start
    deterministic: bool = True  # op determinism: identical results for identical params on CPU
    mixed_precision: bool = False  # float16 compute, float32 output (GPUs with tensor cores)
    jit_compile: bool = False  # XLA
    cpu_replicas: Annotated[int, Field(ge=0)] = 0  # >1: mirror over this many logical CPUs (tests)
    custom: CustomCNNParams = CustomCNNParams()
    vgg19: BackboneParams = BackboneParams()
    resnet50: BackboneParams = BackboneParams()


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
    # a fixed probability, or chosen per model on the validation split: youden (= balanced accuracy) | f1
    threshold: Fraction | Literal["youden", "f1"] = 0.5
    ensemble: Literal["mean", "val_auc"] = "mean"  # soft vote: equal weights or by validation AUC
    bootstrap_resamples: Annotated[int, Field(ge=100)] = 1000  # patient-level resamples for intervals
    test_time_flips: bool = False  # average each view with its mirrored copies (evaluate and predict)
    confidence: Fraction = 0.95
    # temperature: each model's logits divided by a T fitted on the validation split (evaluate and predict)
    calibration: Literal["none", "temperature"] = "none"


class Params(Section):
    seed: Annotated[int, Field(ge=0)] = 42
    data: DataParams = DataParams()
    ingest: IngestParams = IngestParams()
    split: SplitParams = SplitParams()
    augment: AugmentParams = AugmentParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()


class ParamsError(ValueError):
    """params.yaml is unreadable or does not match the schema; the message names the key."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one
    silently: `epochs: 5` then `epochs: 50` would train 50 epochs without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first on line {seen[key] + 1}): which value is meant?",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _describe(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid params"]
    for issue in error.errors():
        key = ".".join(str(part) for part in issue["loc"]) or "(top level)"
        if issue["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {issue['msg']} (got {issue.get('input')!r})")
    return "\n".join(lines)


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ParamsError naming each bad key."""
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}
    except FileNotFoundError as exc:
        raise ParamsError(f"{path}: not found (run the stage from the project root)") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{path}: expected a mapping of sections (seed, data, ...), got {type(raw).__name__}"
        )
    return validate_params(raw, path)


def validate_params(raw: dict[str, Any], source: Path) -> Params:
    """Validate a params mapping; raise ParamsError naming each bad key and `source`."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe(exc, source)) from None
