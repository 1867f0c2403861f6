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
    """The embedded default dataset, generated from `seed`."""

    benign_patients: Annotated[int, Field(ge=2)] = Field(
        18, description="benign patients (31% of all, as in BreakHis)"
    )
    malignant_patients: Annotated[int, Field(ge=2)] = Field(40, description="malignant patients")
    images_per_magnification: PositiveInt = Field(
        2,
        description="mean images per patient and magnification (patients differ; per class exactly patients x this)",
    )
    image_size: ImageSize = Field(
        (230, 350), description="[height, width] of the generated raw PNGs (nuclei scale with it)"
    )
    atypical_fraction: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        0.15, description="share of images showing the other class's morphology, as in real slides"
    )


class DataParams(Section):
    """Where the raw images come from."""

    source: Literal["synthetic", "breakhis", "kaggle"] = Field(
        "synthetic", description="synthetic | breakhis | kaggle"
    )
    path: str | None = Field(
        "data/raw",
        description="breakhis / kaggle: a BreaKHis_v1 tree (or any parent), the Kaggle folder, or a .tar.gz / "
        ".zip of either; ingest's DVC dependency, so it must exist",
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
        (230, 350), description="[height, width]: aspect-preserving resize, then centre crop"
    )
    workers: Annotated[int, Field(ge=0)] = Field(0, description="threads; 0 = one per CPU core")
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="fail | skip: unusable images stop ingest, or are listed in rejected.csv"
    )
    png_compression: Annotated[int, Field(ge=0, le=9)] = Field(
        0, description="0-9 for the ingested PNGs: 0 is fastest (bigger files)"
    )
    stain_normalization: Literal["none", "macenko"] = Field(
        "none", description="none | macenko: every image mapped to one fixed reference stain (predict too)"
    )


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
    folds: Annotated[int, Field(ge=2)] = Field(5, description="kfold: number of patient-grouped folds")
    fold: Annotated[int, Field(ge=0)] = Field(
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

    target_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1.0, description="minority / majority images in train after balancing"
    )
    extra_per_image: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        0.0, description="new images per train image of every class, before balancing"
    )
    flip: bool = Field(True, description="horizontal / vertical flips")
    rotate90: bool = Field(True, description="quarter turns (half turns on non-square images)")
    zoom: Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        0.0, description="max zoom-in (0.1 = crop up to 1/1.1 of each side); 0 = off"
    )
    workers: Annotated[int, Field(ge=0)] = Field(0, description="processes; 0 = one per CPU core")

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
    learning_rate: Annotated[float, Field(gt=0.0)] | None = Field(
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
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.3, description="before the output unit")
    batch_norm: bool = Field(True, description="BatchNorm after every convolution")


class BackboneParams(ModelOverrides):
    """A keras.applications backbone with a dropout + sigmoid head; null keys take `train.*`."""

    weights: str = Field("none", description="none | imagenet | path to a weights file")
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.3, description="before the output unit")
    head_epochs: Annotated[int, Field(ge=0)] = Field(
        3, description="phase 1 (frozen backbone, pretrained weights only): epochs of the head"
    )
    fine_tune_layers: Annotated[int, Field(ge=0)] = Field(
        10, description="phase 2: the top layers with weights unfrozen (BatchNorm not counted)"
    )
    fine_tune_learning_rate: Annotated[float, Field(gt=0.0)] = Field(
        1e-5, description="phase 2's learning rate"
    )


class VGG19Params(BackboneParams):
    """VGG19 (with BatchNorm when trained from scratch); null keys take `train.*`."""

    epochs: PositiveInt | None = Field(5, description="overrides train.epochs (the slowest model on a CPU)")
    learning_rate: Annotated[float, Field(gt=0.0)] | None = Field(
        1e-4, description="overrides train.learning_rate"
    )
    fine_tune_layers: Annotated[int, Field(ge=0)] = Field(
        4, description="phase 2: the top layers with weights unfrozen (4: block5's convolutions)"
    )


class ResNet50Params(BackboneParams):
    """ResNet50; null keys take `train.*`."""

    fine_tune_layers: Annotated[int, Field(ge=0)] = Field(
        10, description="phase 2: the top layers with weights unfrozen (10: the convolutions of stage conv5)"
    )


class TrainParams(Section):
    """Shared by the three train stages; `train.<model>.*` overrides some keys per model."""

    seed: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="training randomness only (initialisation, batch order, augmentation, patches); null = "
        "`seed`. Vary it alone to measure seed-to-seed spread on one split (stages.seed_spread)",
    )
    image_size: ImageSize = Field(
        (64, 64), description="model input: the field resized (field) or the patch size (patches)"
    )
    input: Literal["field", "patches"] = Field(
        "patches",
        description="field | patches: the whole field resized to image_size, or image_size patches of the field "
        "scaled by patch_scale (random in training, a covering grid averaged in evaluate and predict)",
    )
    patch_scale: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.5, description="the ingested field is scaled by this before patches are cut"
    )
    patches_per_image: PositiveInt = Field(1, description="random patches per train image and epoch")
    epochs: PositiveInt = Field(8, description="maximum epochs")
    batch_size: PositiveInt = Field(32, description="images (or patches) per batch and replica")
    learning_rate: Annotated[float, Field(gt=0.0)] = Field(
        1e-3, description="Adam's learning rate (transfer learning's phase 2: fine_tune_learning_rate)"
    )
    patience: PositiveInt = Field(
        4, description="epochs without improvement of `monitor` before early stopping"
    )
    monitor: Literal["val_loss", "val_auc"] = Field(
        "val_auc",
        description="val_auc | val_loss: picks the best epoch (its weights are saved) and stops early",
    )
    min_epochs: Annotated[int, Field(ge=0)] = Field(
        3, description="epochs before early stopping and the best-epoch choice start"
    )
    lr_schedule: Literal["constant", "plateau", "cosine"] = Field(
        "plateau", description="constant | plateau (halve on a plateau of `monitor`) | cosine"
    )
    class_weights: bool = Field(True, description="balanced class weights (on top of augment's balancing)")
    cache: bool | Literal["auto"] = Field(
        "auto", description="keep decoded images in memory after epoch 1: true | false | auto (under 2 GiB)"
    )
    online_augmentation: bool = Field(
        True, description="random flips / rotations every epoch (phase 1 then recomputes backbone features)"
    )
    hed_jitter: Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        0.1, description="on-line H&E stain jitter, every train image of both classes; 0 = off"
    )
    hsv_jitter: Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        0.05, description="on-line hue / saturation / value jitter, likewise"
    )
    deterministic: bool = Field(True, description="op determinism: same params + seed -> same metrics on CPU")
    mixed_precision: bool = Field(
        False, description="float16 compute with a float32 output layer (GPU runners)"
    )
    jit_compile: bool = Field(False, description="XLA compilation")
    cpu_replicas: Annotated[int, Field(ge=0)] = Field(
        0, description="more than 1: mirror over that many logical CPUs (tests the multi-GPU path)"
    )
    custom: CustomCNNParams = CustomCNNParams()
    vgg19: VGG19Params = VGG19Params()
    resnet50: ResNet50Params = ResNet50Params()


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
    bootstrap_resamples: Annotated[int, Field(ge=100)] = Field(
        1000, description="confidence intervals resample whole patient groups"
    )
    test_time_flips: bool = Field(
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

    seed: Annotated[int, Field(ge=0)] = Field(
        42, description="the run's seed: data, split, augmentation, training"
    )
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
        "# Generated from the schema in stages/pipeline/params.py (`python -m stages.pipeline.params`):",
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
    PARAMS_FILE.write_text(render_params())
    print(f"wrote {PARAMS_FILE} from the schema's defaults")
