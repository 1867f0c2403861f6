"""The params catalogue of bad input (issue 24): every number is finite and in range before work starts,
and training that diverges fails instead of saving a broken model.

Each case changes the shipped params.yaml (or the environment) and names the one line of the error a
user gets: `load_params` refuses it with a ParamsError (a ValueError: `run_stage` prints it as
`error: ...`, no traceback) before any stage allocates anything. The memory budget is fixed at 16 GB
(BREAKHIS_MEMORY_GB) so that every case is the same on every machine, except the workers cap, which
is this machine's (WORKERS_PER_CORE x its cores). Then training: a diverging fit stops with the
epoch and the likely cause, no model with non-finite weights is saved or loaded; and the peak memory
of refusing the largest sizes, measured.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from breakhis.pipeline.machine import (
    BACKBONE_SIZES,
    MEMORY_VARIABLE,
    WORKERS_PER_CORE,
    cores,
    custom_cnn_size,
    memory_estimates,
)
from breakhis.pipeline.params import MAX_PIXELS, Params, ParamsError
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.stage import USER_ERRORS
from tests.conftest import PROJECT_ROOT

BUDGET_GB = "16"
CAP = WORKERS_PER_CORE * cores()  # workers and CPU replicas allowed on this machine


def FIELDS_OF(height: int, width: int) -> dict[str, object]:  # noqa: N802 - reads as a constant
    """Generated and ingested fields of this size: a large input then fits in the field (coherence)."""
    return {"data.synthetic.image_size": [height, width], "ingest.image_size": [height, width]}


@dataclass(frozen=True)
class Raw:
    """A value written into params.yaml as this YAML text, as a user would type it."""

    text: str


@dataclass(frozen=True)
class Case:
    changes: dict[str, object]  # dotted key -> value (or Raw YAML text)
    message: str  # the line of the error that names the key and what is wrong
    env: dict[str, str] = field(default_factory=dict)  # environment changes (the memory budget)


CASES: dict[str, Case] = {
    # ---- non-finite floats: accepted before (no upper bound) ----
    "learning_rate .inf": Case(
        {"train.learning_rate": Raw(".inf")}, "train.learning_rate: Input should be a finite number (got inf)"
    ),
    "custom learning_rate .inf": Case(
        {"models.custom.learning_rate": Raw(".inf")},
        "models.custom.learning_rate: Input should be a finite number (got inf)",
    ),
    "vgg19 learning_rate .Inf": Case(
        {"models.vgg19.learning_rate": Raw(".Inf")},
        "models.vgg19.learning_rate: Input should be a finite number (got inf)",
    ),
    "resnet50 fine_tune_learning_rate .inf": Case(
        {"models.resnet50.fine_tune_learning_rate": Raw(".inf")},
        "models.resnet50.fine_tune_learning_rate: Input should be a finite number (got inf)",
    ),
    "fine_tune_learning_rate 1e999 (text to PyYAML, inf to float)": Case(
        {"models.vgg19.fine_tune_learning_rate": Raw("1e999")},
        "models.vgg19.fine_tune_learning_rate: Input should be a finite number (got '1e999')",
    ),
    "learning_rate Infinity": Case(
        {"train.learning_rate": Raw("Infinity")},
        "train.learning_rate: Input should be a finite number (got 'Infinity')",
    ),
    # ---- non-finite floats refused before by a bound, as "greater than 0 (got nan)": now named ----
    "learning_rate .nan": Case(
        {"train.learning_rate": Raw(".nan")}, "train.learning_rate: Input should be a finite number (got nan)"
    ),
    "learning_rate nan (text)": Case(
        {"train.learning_rate": Raw("nan")},
        "train.learning_rate: Input should be a finite number (got 'nan')",
    ),
    "patch_scale .NaN": Case(
        {"train.patch_scale": Raw(".NaN")}, "train.patch_scale: Input should be a finite number (got nan)"
    ),
    "val_size .nan": Case(
        {"split.val_size": Raw(".nan")}, "split.val_size: Input should be a finite number (got nan)"
    ),
    "threshold .nan": Case(
        {"evaluate.threshold": Raw(".nan")}, "evaluate.threshold: Input should be a finite number (got nan)"
    ),
    "atypical_fraction .nan": Case(
        {"data.synthetic.atypical_fraction": Raw(".nan")},
        "data.synthetic.atypical_fraction: Input should be a finite number (got nan)",
    ),
    "dropout .nan": Case(
        {"models.custom.dropout": Raw(".nan")},
        "models.custom.dropout: Input should be a finite number (got nan)",
    ),
    "hed_jitter .inf": Case(
        {"train.hed_jitter": Raw(".inf")}, "train.hed_jitter: Input should be a finite number (got inf)"
    ),
    "confidence -.inf": Case(
        {"evaluate.confidence": Raw("-.inf")},
        "evaluate.confidence: Input should be a finite number (got -inf)",
    ),
    "zoom -.inf": Case(
        {"augment.zoom": Raw("-.inf")}, "augment.zoom: Input should be a finite number (got -inf)"
    ),
    # ---- booleans are not numbers: accepted before as 1 or 0 ----
    "epochs true": Case({"train.epochs": True}, "train.epochs: Input should be a valid integer (got True)"),
    "batch_size true": Case(
        {"train.batch_size": True}, "train.batch_size: Input should be a valid integer (got True)"
    ),
    "seed true": Case({"seed": True}, "seed: Input should be a valid integer (got True)"),
    "custom epochs true": Case(
        {"models.custom.epochs": True}, "models.custom.epochs: Input should be a valid integer (got True)"
    ),
    "min_epochs false": Case(
        {"train.min_epochs": False}, "train.min_epochs: Input should be a valid integer (got False)"
    ),
    "fold false": Case({"split.fold": False}, "split.fold: Input should be a valid integer (got False)"),
    "ingest workers true": Case(
        {"ingest.workers": True}, "ingest.workers: Input should be a valid integer (got True)"
    ),
    "learning_rate true": Case(
        {"train.learning_rate": True},
        "train.learning_rate: expected a number, not a boolean (true/false) (got True)",
    ),
    "extra_per_image true": Case(
        {"augment.extra_per_image": True},
        "augment.extra_per_image: expected a number, not a boolean (true/false) (got True)",
    ),
    "atypical_fraction false": Case(
        {"data.synthetic.atypical_fraction": False},
        "data.synthetic.atypical_fraction: expected a number, not a boolean (true/false) (got False)",
    ),
    # ---- numbers and words are not booleans: accepted before ----
    "flip 1": Case({"augment.flip": 1}, "augment.flip: Input should be a valid boolean (got 1)"),
    "class_weights 0": Case(
        {"train.class_weights": 0}, "train.class_weights: Input should be a valid boolean (got 0)"
    ),
    "cache 1": Case({"train.cache": 1}, "train.cache: Input should be a valid boolean (got 1)"),
    "test_time_flips 'yes'": Case(
        {"evaluate.test_time_flips": "yes"},
        "evaluate.test_time_flips: Input should be a valid boolean (got 'yes')",
    ),
    "deterministic 'off'": Case(
        {"train.deterministic": "off"}, "train.deterministic: Input should be a valid boolean (got 'off')"
    ),
    # ---- integers are integers: 3.0 and "16" were converted before ----
    "epochs 3.0": Case({"train.epochs": 3.0}, "train.epochs: Input should be a valid integer (got 3.0)"),
    "batch_size '16'": Case(
        {"train.batch_size": "16"}, "train.batch_size: Input should be a valid integer (got '16')"
    ),
    "png_compression 1.0": Case(
        {"ingest.png_compression": 1.0}, "ingest.png_compression: Input should be a valid integer (got 1.0)"
    ),
    # ---- ranges without an upper bound before ----
    "seed 2**32": Case(
        {"seed": 2**32}, "seed: Input should be less than or equal to 4294967295 (got 4294967296)"
    ),
    "train.seed 2**40": Case(
        {"train.seed": 2**40},
        "train.seed: Input should be less than or equal to 4294967295 (got 1099511627776)",
    ),
    "bootstrap_resamples 10**9": Case(
        {"evaluate.bootstrap_resamples": 10**9},
        "evaluate.bootstrap_resamples: Input should be less than or equal to 100000 (got 1000000000)",
    ),
    # ---- min_epochs <= every model's epochs: accepted before (the last epoch kept, silently) ----
    "min_epochs above the shared epochs": Case(
        {"train.min_epochs": 9},
        "train.min_epochs: 9 is above the epochs of a model: vgg19 trains 5 (models.vgg19.epochs), "
        "resnet50 trains 8 (train.epochs); lower train.min_epochs or raise the epochs",
    ),
    "shared epochs below min_epochs": Case(
        {"train.epochs": 2},
        "train.min_epochs: 3 is above the epochs of a model: resnet50 trains 2 (train.epochs);",
    ),
    "custom epochs below min_epochs": Case(
        {"models.custom.epochs": 2},
        "train.min_epochs: 3 is above the epochs of a model: custom trains 2 (models.custom.epochs);",
    ),
    "vgg19 epochs below min_epochs": Case(
        {"models.vgg19.epochs": 1},
        "train.min_epochs: 3 is above the epochs of a model: vgg19 trains 1 (models.vgg19.epochs);",
    ),
    # ---- train.validation none: nothing may be chosen on the validation split it trains on ----
    "youden threshold without validation": Case(
        {"train.validation": "none", "train.lr_schedule": "cosine", "evaluate.threshold": "youden"},
        "evaluate.threshold: youden is chosen on the validation split, which train.validation: none "
        "trains on; set a probability",
    ),
    "temperature without validation": Case(
        {"train.validation": "none", "train.lr_schedule": "constant", "evaluate.calibration": "temperature"},
        "evaluate.calibration: temperature is chosen on the validation split",
    ),
    "val_auc weights without validation": Case(
        {"train.validation": "none", "train.lr_schedule": "cosine", "evaluate.ensemble": "val_auc"},
        "evaluate.ensemble: val_auc is chosen on the validation split",
    ),
    "plateau schedule without validation": Case(
        {"train.validation": "none"},
        "train.lr_schedule: plateau halves the rate on a plateau of the validation metric, and "
        "train.validation is none; use constant or cosine",
    ),
    "snapshots with a validation split": Case(
        {"train.snapshot_epochs": [2]},
        "train.snapshot_epochs: with train.validation split the kept epoch is chosen on the validation split",
    ),
    "a snapshot epoch twice": Case(
        {"train.validation": "none", "train.lr_schedule": "cosine", "train.snapshot_epochs": [2, 2]},
        "train.snapshot_epochs: [2, 2] names an epoch twice",
    ),
    "snapshots with a seed ensemble": Case(
        {
            "train.validation": "none",
            "train.lr_schedule": "cosine",
            "train.snapshot_epochs": [2],
            "models.resnet50.seeds": 3,
        },
        "train.snapshot_epochs: a snapshot holds the weights of one network, and models.resnet50.seeds: 3",
    ),
    "a seed ensemble of no network": Case(
        {"models.custom.seeds": 0}, "models.custom.seeds: Input should be greater than 0 (got 0)"
    ),
    "a snapshot epoch zero": Case(
        {"train.validation": "none", "train.lr_schedule": "cosine", "train.snapshot_epochs": [0]},
        "train.snapshot_epochs.0: Input should be greater than 0 (got 0)",
    ),
    "a step cap of zero": Case(
        {"train.steps_per_epoch": 0}, "train.steps_per_epoch: Input should be greater than 0 (got 0)"
    ),
    "a fractional step cap": Case(
        {"train.steps_per_epoch": 2.5}, "train.steps_per_epoch: Input should be a valid integer (got 2.5)"
    ),
    "a boolean step cap": Case(
        {"train.steps_per_epoch": True}, "train.steps_per_epoch: Input should be a valid integer (got True)"
    ),
    "an ensemble member twice": Case(
        {"evaluate.members": ["custom", "custom"]},
        "evaluate.members: ['custom', 'custom'] names a model twice",
    ),
    "an unknown ensemble member": Case(
        {"evaluate.members": ["custom", "vgg16"]}, "evaluate.members.1: Input should be 'custom', 'vgg19' or"
    ),
    "no ensemble member": Case(
        {"evaluate.members": []}, "evaluate.members: List should have at least 1 item"
    ),
    "validation neither split nor none": Case(
        {"train.validation": "off"}, "train.validation: Input should be 'split' or 'none' (got 'off')"
    ),
    # ---- the per-model sections moved from train to models: the old keys name their new home ----
    "a per-model key under train (the old layout)": Case(
        {"train.custom.epochs": 30},
        "train.custom.epochs: the per-model settings moved to models.custom (models.custom.epochs)",
    ),
    "a whole per-model section under train": Case(
        {"train.vgg19": {"weights": "imagenet", "epochs": 3}},
        "train.vgg19.weights: the per-model settings moved to models.vgg19 (models.vgg19.weights)",
    ),
    "an empty per-model section under train": Case(
        {"train.resnet50": None}, "train.resnet50: the per-model settings moved to models.resnet50"
    ),
    # ---- workers capped at WORKERS_PER_CORE x this machine's cores: accepted before ----
    "ingest workers above the cap": Case(
        {"ingest.workers": CAP + 1},
        f"ingest.workers: {CAP + 1} is above {WORKERS_PER_CORE} x the {cores()} cores of this machine "
        f"({CAP}): more only multiplies memory (0 = one thread per core)",
    ),
    "augment workers far above the cap": Case(
        {"augment.workers": 10_000},
        f"augment.workers: 10000 is above {WORKERS_PER_CORE} x the {cores()} cores of this machine ({CAP})",
    ),
    "cpu_replicas above the cap": Case(
        {"train.cpu_replicas": CAP + 1},
        f"train.cpu_replicas: {CAP + 1} is above {WORKERS_PER_CORE} x the {cores()} cores of this machine",
    ),
    # ---- sizes beyond what ingest reads (16 Mpx): accepted before, generated, then refused image by image
    "synthetic image_size 5000x5000": Case(
        {"data.synthetic.image_size": [5000, 5000]},
        "data.synthetic.image_size: 5000x5000 is 25,000,000 pixels, over the 16,000,000 that ingest reads",
    ),
    "synthetic image_size 100000x150000": Case(
        {"data.synthetic.image_size": [100_000, 150_000]},
        "data.synthetic.image_size: 100000x150000 is 15,000,000,000 pixels, over the 16,000,000",
    ),
    "ingest image_size 4000x6000": Case(
        {"data.source": "breakhis", "ingest.image_size": [4000, 6000]},
        "ingest.image_size: 4000x6000 is 24,000,000 pixels, over the 16,000,000 that ingest reads",
    ),
    "ingest image_size above the generated images": Case(
        {"ingest.image_size": [460, 700]},
        "ingest.image_size: 460x700 is larger than the generated images (data.synthetic.image_size 230x350): "
        "ingest would refuse every one",
    ),
    # ---- sizes beyond the memory budget: accepted before, the process grew until killed ----
    "train image_size 65536x65536": Case(
        {"train.image_size": [65536, 65536]},  # no field is that large (breakhis.pipeline.coherence)
        "train.image_size: 65536x65536 patches (custom, vgg19, resnet50; train.input patches) do not fit",
    ),
    "train image_size 3000x3000": Case(
        {"train.image_size": [3000, 3000], "train.patch_scale": 1.0, **FIELDS_OF(3000, 4000)},
        "train.image_size and train.batch_size: training custom on 3000x3000 images, 32 per batch needs "
        "about 355.1 GB (TensorFlow 0.8 GB, weights and optimizer 2 MB, activations 119.2 GB, input "
        "batches 13.8 GB, patch shuffle buffer 221.2 GB), over the memory budget of 16.0 GB (set by "
        "BREAKHIS_MEMORY_GB)",
    ),
    "train image_size 2048x2048, whole field": Case(
        {"train.image_size": [2048, 2048], "train.input": "field", **FIELDS_OF(2048, 3072)},
        "train.image_size and train.batch_size: training vgg19 on 2048x2048 images, 32 per batch needs about",
    ),
    "custom image_size 2048x2048": Case(
        {"models.custom.image_size": [2048, 2048], "train.patch_scale": 1.0, **FIELDS_OF(2048, 3072)},
        "models.custom.image_size and train.batch_size: training custom on 2048x2048 images",
    ),
    "vgg19 image_size 1024x1024": Case(
        {"models.vgg19.image_size": [1024, 1024], "train.input": "field", **FIELDS_OF(1024, 1536)},
        "models.vgg19.image_size and train.batch_size: training vgg19 on 1024x1024 images, 32 per batch "
        "needs about 126.5 GB",
    ),
    "batch_size 100000": Case(
        {"train.batch_size": 100_000},
        "train.image_size and train.batch_size: training custom on 64x64 images, 100000 per batch needs",
    ),
    "resnet50 batch_size 4096": Case(
        {"models.resnet50.batch_size": 4096},
        "train.image_size and models.resnet50.batch_size: training resnet50 on 64x64 images, 4096 per batch",
    ),
    "custom filters 8192 each": Case(
        {"models.custom.filters": [8192, 8192, 8192, 8192]},
        "train.image_size, train.batch_size and models.custom.filters: training custom on 64x64 images",
    ),
    "cpu_replicas multiply the batch": Case(
        {"train.cpu_replicas": 2, "train.batch_size": 16384},
        "training custom on 64x64 images, 32768 per batch needs about",
    ),
    "synthetic image_size under the pixel cap, over a 1 GB budget": Case(
        {"data.synthetic.image_size": [3000, 4500]},
        "data.synthetic.image_size: generating 3000x4500 images needs about 1.6 GB (Python 0.1 GB, one image "
        "1.5 GB), over the memory budget of 1.0 GB (set by BREAKHIS_MEMORY_GB)",
        env={MEMORY_VARIABLE: "1"},
    ),
    "ingest with Macenko on big images": Case(
        {
            "data.synthetic.image_size": [3000, 4500],
            "ingest.image_size": [3000, 4500],
            "ingest.workers": 2,
            "ingest.stain_normalization": "macenko",
        },
        "ingest.image_size: ingesting at 3000x4500 on 2 workers needs about 4.6 GB (Python 0.1 GB, 2 workers "
        "4.5 GB), over the memory budget of 4.0 GB",
        env={MEMORY_VARIABLE: "4"},
    ),
    "the default params over a tiny budget": Case(
        {},
        "train.image_size and train.batch_size: training vgg19 on 64x64 images, 32 per batch needs about "
        "1.7 GB (TensorFlow 0.8 GB, weights and optimizer 0.3 GB, activations 0.5 GB, input batches 6 MB, "
        "patch shuffle buffer 0.1 GB), over the memory budget of 0.5 GB (set by BREAKHIS_MEMORY_GB)",
        env={MEMORY_VARIABLE: "0.5"},
    ),
    # ---- the budget itself must be a finite number above 0 ----
    "budget not a number": Case(
        {}, "BREAKHIS_MEMORY_GB='lots': expected the memory budget in GB", env={MEMORY_VARIABLE: "lots"}
    ),
    "budget inf": Case(
        {}, "BREAKHIS_MEMORY_GB='inf': expected the memory budget in GB", env={MEMORY_VARIABLE: "inf"}
    ),
    "budget nan": Case(
        {}, "BREAKHIS_MEMORY_GB='nan': expected the memory budget in GB", env={MEMORY_VARIABLE: "nan"}
    ),
    "budget 0": Case(
        {},
        "BREAKHIS_MEMORY_GB='0': expected the memory budget in GB, a number above 0",
        env={MEMORY_VARIABLE: "0"},
    ),
}

# Refused before this catalogue too (a bound held): kept so that they stay refused.
GUARDS: dict[str, Case] = {
    "epochs -1": Case({"train.epochs": -1}, "train.epochs: Input should be greater than 0 (got -1)"),
    "learning_rate -0.001": Case(
        {"train.learning_rate": -0.001}, "train.learning_rate: Input should be greater than 0 (got -0.001)"
    ),
    "augment workers -1": Case(
        {"augment.workers": -1}, "augment.workers: Input should be greater than or equal to 0 (got -1)"
    ),
    "image_size 16x16": Case(
        {"train.image_size": [16, 16]},
        "train.image_size.0: Input should be greater than or equal to 32 (got 16)",
    ),
    "val_size 0": Case({"split.val_size": 0}, "split.val_size: Input should be greater than 0 (got 0)"),
}


def write_params(folder: Path, changes: dict[str, object]) -> Path:
    """The shipped params.yaml with `changes` (dotted keys) applied, written into `folder`."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw: dict[str, str] = {}
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, Raw):
            raw[f"RAW-{len(raw)}"] = value.text
            value = f"RAW-{len(raw) - 1}"
        node[leaf] = value
    text = yaml.safe_dump(params, sort_keys=False)
    for placeholder, literal in raw.items():
        text = text.replace(placeholder, literal)
    path = folder / "params.yaml"
    path.write_text(text)
    return path


def refusal(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lines of the error that `load_params` gives for the case."""
    monkeypatch.setenv(MEMORY_VARIABLE, BUDGET_GB)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    path = write_params(folder, case.changes)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert isinstance(error.value, USER_ERRORS)  # run_stage prints it as `error: ...`, no traceback
    return str(error.value).splitlines()


@pytest.mark.parametrize("case", CASES)
def test_params_catalogue(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = refusal(CASES[case], tmp_path, monkeypatch)
    assert any(CASES[case].message in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize("case", GUARDS)
def test_params_refused_before_stay_refused(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = refusal(GUARDS[case], tmp_path, monkeypatch)
    assert any(GUARDS[case].message in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"train.learning_rate": 1}, lambda p: p.train.learning_rate == 1.0),
        ({"train.learning_rate": Raw("1e-4")}, lambda p: p.train.learning_rate == 1e-4),  # a str to PyYAML
        ({"evaluate.threshold": "youden"}, lambda p: p.evaluate.threshold == "youden"),
        ({"train.cache": False}, lambda p: p.train.cache is False),
        ({"ingest.workers": CAP, "augment.workers": CAP}, lambda p: p.augment.workers == CAP),
        ({"train.min_epochs": 5, "train.epochs": 5}, lambda p: p.train.min_epochs == 5),
        ({"data.synthetic.image_size": [3000, 4500]}, lambda p: p.data.synthetic.image_size == (3000, 4500)),
    ],
    ids=[
        "int for a float",
        "1e-4",
        "a word for a threshold",
        "false",
        "workers at the cap",
        "min_epochs equal to epochs",
        "synthetic under the cap and budget",
    ],
)
def test_good_values_still_pass(
    changes: dict[str, object], check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MEMORY_VARIABLE, BUDGET_GB)
    assert check(load_params(write_params(tmp_path, changes)))


def test_the_shipped_params_fit_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_VARIABLE, raising=False)
    load_params(PROJECT_ROOT / "params.yaml")
    assert max(estimate.total for estimate in memory_estimates(Params())) < 2e9  # any laptop


def test_the_pixel_cap_is_the_one_ingest_reads() -> None:
    from breakhis.data import images

    assert images.MAX_PIXELS == MAX_PIXELS and images.MAX_UPSCALE == 1.05


def test_the_model_sizes_of_the_estimate_are_kerass() -> None:
    """The activations per pixel and parameters of the memory estimate, counted on the real models."""
    import keras
    import numpy as np

    from breakhis.modeling.architectures import build_custom_cnn, vgg19_batchnorm

    def activations(model: keras.Model) -> float:
        total = 0
        for layer in model.layers:
            total += (
                activations(layer) if isinstance(layer, keras.Model) else int(np.prod(layer.output.shape[1:]))
            )
        return total / (64 * 64)

    for filters, batch_norm in (([16, 32, 64, 128], True), ([8, 8, 16, 16], False)):
        model = build_custom_cnn((64, 64), filters, 0.3, batch_norm)
        per_pixel, parameters = custom_cnn_size(filters, batch_norm)
        assert per_pixel == pytest.approx(activations(model), abs=0.1)  # the head: a few values in all
        assert parameters == model.count_params()
    backbones = {
        ("vgg19", "none"): vgg19_batchnorm((64, 64)),
        ("vgg19", "pretrained"): keras.applications.VGG19(
            include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg"
        ),
        ("resnet50", "pretrained"): keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg"
        ),
    }
    for key, model in backbones.items():
        per_pixel, parameters = BACKBONE_SIZES[key]
        assert per_pixel == pytest.approx(activations(model), abs=1)
        assert parameters == model.count_params()
    assert BACKBONE_SIZES["resnet50", "none"] == BACKBONE_SIZES["resnet50", "pretrained"]


# ---- training that diverges fails, and no model with non-finite weights is saved or loaded ---------


def tiny_fit(x, learning_rate: float) -> None:
    import keras
    import numpy as np

    from breakhis.modeling.architectures import build_custom_cnn
    from breakhis.modeling.divergence import StopOnNonFiniteLoss

    keras.utils.set_random_seed(0)
    model = build_custom_cnn((32, 32), [4, 4, 4, 4], 0.0, True)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    y = np.array([0, 1] * (len(x) // 2), "float32")
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        validation_data=(x, y),
        callbacks=[StopOnNonFiniteLoss("custom", f"train.learning_rate {learning_rate:g}")],
    )


def test_a_diverging_learning_rate_stops_training_naming_the_epoch_and_cause() -> None:
    import numpy as np

    from breakhis.modeling.divergence import TrainingDiverged

    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    with pytest.raises(TrainingDiverged) as error:
        tiny_fit(x, 1e12)
    assert isinstance(error.value, ValueError)
    assert re.search(
        r"train custom: training diverged: the loss is nan in epoch 1 \(after batch \d\)", str(error.value)
    )
    assert (
        "a learning rate too high for this model and data (train.learning_rate 1e+12: try a lower one)"
        in str(error.value)
    )


def test_non_finite_inputs_stop_training_at_the_first_batch() -> None:
    import numpy as np

    from breakhis.modeling.divergence import TrainingDiverged

    x = np.full((8, 32, 32, 3), 100.0, "float32")
    x[:, 0, 0, 0] = np.nan  # in every image: the first batch has one, shuffled or not
    with pytest.raises(TrainingDiverged, match=r"the loss is nan in epoch 1 \(after batch 1\).*not finite"):
        tiny_fit(x, 1e-3)


def nan_model(tmp_path: Path) -> tuple:
    """The tiny custom CNN with one NaN weight, and where it would be saved."""
    import numpy as np

    from breakhis.modeling.architectures import build_custom_cnn
    from tests.conftest import TINY_MODEL_SIZE

    model = build_custom_cnn(TINY_MODEL_SIZE, [4, 4, 4, 4], 0.0, True)
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] = np.nan
    model.set_weights(weights)
    return model, tmp_path / "custom" / "model.keras"


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path: Path) -> None:
    from breakhis.modeling.divergence import TrainingDiverged, require_finite_weights

    model, _ = nan_model(tmp_path)
    with pytest.raises(
        TrainingDiverged,
        match=r"train custom: training diverged: 1 weight tensors hold NaN or infinity "
        r"\(block1_conv/kernel\); nothing was saved",
    ):
        require_finite_weights(model, "custom", "train.learning_rate 0.001")


def test_evaluate_and_predict_refuse_a_model_with_non_finite_weights(tmp_path: Path) -> None:
    from breakhis.modeling.description import ModelFileError, describe, load_model, save_model
    from tests.conftest import tiny_run_params

    model, path = nan_model(tmp_path)
    description = describe(
        "custom",
        tiny_run_params(),
        data_files=[],
        images=8,
        validation_images=0,
        magnifications=tiny_run_params().data.magnifications,
        training={"epochs_trained": 1, "kept_epoch": 0},
    )
    save_model(model, path, description)  # as a diverged run before this check would have
    with pytest.raises(
        ModelFileError,
        match=r"model.keras: 1 of its weight tensors hold NaN or infinity \(block1_conv/kernel\): "
        "its training diverged",
    ):
        load_model(path, "custom")


# ---- the peak memory of refusing the largest sizes -------------------------------------------------

MEASURE = (
    "import re, runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "finally:\n"
    "    status = open('/proc/self/status').read()\n"
    "    print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1]) // 1024)\n"
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
@pytest.mark.parametrize(
    ("command", "changes", "message", "limit_mb"),
    [
        (
            ["stages.train", "custom"],
            {"train.image_size": [65536, 65536]},
            "invalid params\n  train.image_size: 65536x65536 patches (custom, vgg19, resnet50;",
            200,  # the params are read before TensorFlow is imported
        ),
        (
            ["stages.ingest"],
            {"data.synthetic.image_size": [100_000, 150_000]},
            "invalid params\n  data.synthetic.image_size: 100000x150000 is 15,000,000,000 pixels",
            200,
        ),
    ],
    ids=["train 65536x65536", "synthetic 100000x150000"],
)
def test_the_largest_sizes_are_refused_before_any_allocation(
    command: list[str], changes: dict[str, object], message: str, limit_mb: int, tmp_path: Path
) -> None:
    write_params(tmp_path, changes)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(MEMORY_VARIABLE, None)  # this machine's own budget
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr  # one message, no traceback
    assert message in result.stderr
    peak_mb = int(result.stdout.split()[-1])
    print(f"{' '.join(command)} refusing {changes}: peak {peak_mb} MB")
    assert peak_mb < limit_mb
