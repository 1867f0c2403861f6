"""The schema of params.yaml, validated before any stage does heavy work.

Unknown keys and values of the wrong type are refused with an error that names the key, so a
typo in `dvc exp run -S train.epoch=3` fails at once instead of being silently ignored.

Every number is checked before work starts (`load_params`, breakhis.pipeline.params_file):
- the schema (this module; its train and models sections: breakhis.pipeline.train_params; the
  value types: breakhis.pipeline.param_types): every float finite (no `.inf`, `.nan`), booleans are not
  numbers and numbers are not booleans (`epochs: true` is refused, not read as 1 epoch; `flip: 1`
  is refused), integers are integers (`epochs: 3.0` or `"3"` is refused; a float key still takes
  `1`), each value in its range (generated and ingested images within the MAX_PIXELS that ingest
  reads), and the relations between keys (ingest's size within the generated images', the split
  sizes, the fold; across sections: breakhis.pipeline.coherence, e.g. patches that fit in the scaled
  field, `train.min_epochs` at most every model's epochs);
- the machine (`machine_problems` in breakhis.pipeline.machine, run by `validate_params`):
  `ingest.workers`, `augment.workers` and `train.cpu_replicas` at most WORKERS_PER_CORE x the cores
  of this machine, and the memory that the image sizes need (`memory_estimates`: synthetic
  generation, ingest, and training each model at its image size x batch size) at most the memory
  budget: this machine's memory (its cgroup limit when lower), or BREAKHIS_MEMORY_GB. A size that
  cannot fit is refused with its estimate before anything is allocated. The machine is checked
  where the stages run, not in the schema: a model's stored params stay valid on a smaller machine.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from breakhis.pipeline.param_types import (
    Criterion,
    Flag,
    Fraction,
    ImageSize,
    Integer,
    Magnification,
    ModelName,
    Number,
    PositiveInt,
    Section,
    Seed,
    chosen_by,
    pixel_count,
    size_text,
)
from breakhis.pipeline.train_params import ModelsParams, TrainParams

# The largest image ingest decodes (breakhis.data.images.MAX_PIXELS, equal by a test: that module
# imports this one): a generated or ingested image above it could never be read.
MAX_PIXELS = 16_000_000
MAX_UPSCALE = 1.05  # breakhis.data.images: ingest enlarges a raw image at most this much


def _under_pixel_cap(key: str, size: tuple[int, int]) -> None:
    if pixel_count(size) > MAX_PIXELS:
        raise ValueError(
            f"{key}: {size_text(size)} is {pixel_count(size):,} pixels, over the {MAX_PIXELS:,} that "
            "ingest reads (a BreakHis field is 460x700)"
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


def training_seed(params: Params) -> int:
    """`train.seed` when set, else the global `seed`."""
    return params.seed if params.train.seed is None else params.train.seed


class EvaluateParams(Section):
    """Every model and the ensemble on the test split; the decision rule chosen on validation."""

    threshold: Fraction | Criterion = Field(
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
    models: ModelsParams = ModelsParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _nothing_chosen_on_trained_images(self) -> Params:
        """With train.validation none the validation split is trained on: nothing may be chosen there."""
        if self.train.validation == "split":
            return self
        evaluate = self.evaluate
        chosen = {  # key: (its value, chosen on validation?, what to set instead)
            "evaluate.threshold": (
                evaluate.threshold,
                chosen_by(evaluate.threshold) is not None,
                "a probability",
            ),
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
                    f"ingest.image_size: {size_text(size)} is larger than the generated images "
                    f"(data.synthetic.image_size {size_text(raw)}): ingest would refuse every one"
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
