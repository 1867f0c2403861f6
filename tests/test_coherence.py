"""The rules between keys (breakhis.pipeline.coherence), checked when params are loaded: every
combination that could not run, or would not do what it says, is refused with the keys and a fix."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from breakhis.pipeline.coherence import scaled_size
from breakhis.pipeline.params import Params, ParamsError
from breakhis.pipeline.params_file import validate_params
from breakhis.pipeline.profiles import apply, available, flatten, load_profile
from breakhis.pipeline.train_params import fit_settings
from tests.conftest import PROJECT_ROOT, tiny_run_params
from tests.pipeline_repo import TINY

SOURCE = Path("params.yaml")


def refused(changes: dict[str, object]) -> str:
    """The one problem line of the refusal of the defaults with these dotted changes."""
    with pytest.raises(ParamsError) as error:
        validate_params(apply(Params().model_dump(mode="json"), changes), SOURCE, machine=False)
    lines = str(error.value).splitlines()
    assert lines[0] == "params.yaml: invalid params" and len(lines) == 2, str(error.value)
    return lines[1].strip()


def accepted(changes: dict[str, object]) -> Params:
    return validate_params(apply(Params().model_dump(mode="json"), changes), SOURCE, machine=False)


def test_the_old_tutorial_step_names_the_size_the_scale_and_the_fix() -> None:
    line = refused({"train.image_size": [224, 224], "train.epochs": 30})
    assert line.startswith("train.image_size: 224x224 patches (custom, vgg19, resnet50; train.input patches)")
    assert "ingest.image_size 230x350 x train.patch_scale 0.5 = 115x175" in line
    assert "raise train.patch_scale to 0.98, or lower train.image_size to at most 115x175" in line
    assert accepted({"train.image_size": [224, 224], "train.patch_scale": 0.98}).train.patch_scale == 0.98
    assert accepted({"train.image_size": [115, 175]}).train.image_size == (115, 175)
    refused({"train.image_size": [116, 175]})  # one pixel too many, as views.scaled_size rounds


def test_a_patch_too_large_for_one_model_names_its_own_key() -> None:
    line = refused({"models.vgg19.image_size": [128, 128]})
    assert line.startswith("models.vgg19.image_size: 128x128 patches (vgg19; train.input patches)")
    line = refused(
        {"train.image_size": [224, 224], "ingest.image_size": [200, 300], "train.patch_scale": 1.0}
    )
    assert "raise ingest.image_size, or lower train.image_size to at most 200x300" in line


def test_a_whole_field_is_not_enlarged() -> None:
    line = refused({"train.input": "field", "train.image_size": [256, 256]})
    assert line.startswith(
        "train.image_size: 256x256 (custom, vgg19, resnet50) is larger than the field ingest"
    )
    assert "ingest.image_size 230x350 (train.input field)" in line
    assert accepted({"train.input": "field", "train.image_size": [224, 224]}).train.input == "field"


def test_a_shared_key_that_reaches_no_model_is_refused() -> None:
    every = {"models.custom.patience": 5, "models.vgg19.patience": 6, "models.resnet50.patience": 7}
    line = refused({"train.patience": 3, **every})
    assert line == (
        "train.patience: 3 reaches no model, every one sets its own (models.custom.patience: 5, "
        "models.vgg19.patience: 6, models.resnet50.patience: 7); set those, or set them to null to take "
        "train.patience"
    )
    params = accepted(every)
    assert fit_settings(params.train, params.models.vgg19).patience == 6  # the shared key at its default
    params = accepted({"train.patience": 3, **every, "models.vgg19.patience": None})
    assert fit_settings(params.train, params.models.vgg19).patience == 3


def test_a_shared_key_reaching_some_models_is_allowed_and_reaches_only_them() -> None:
    """The documented limit: `-S train.epochs=30` with the defaults changes ResNet50 alone."""
    params = accepted({"train.epochs": 30})
    epochs = [
        fit_settings(params.train, params.models.of(name)).epochs for name in ("custom", "vgg19", "resnet50")
    ]
    assert epochs == [30, 5, 30]


def test_a_weights_file_keras_cannot_read_is_refused() -> None:
    line = refused({"models.vgg19.weights": "/models/vgg19.bin"})
    assert line.startswith("models.vgg19.weights: '/models/vgg19.bin' is neither none, imagenet nor a Keras")
    for weights in ("imagenet", "none", "w/vgg19_notop.h5", "v.weights.h5", "v.keras"):
        assert accepted({"models.vgg19.weights": weights}).models.vgg19.weights == weights


def test_imagenet_weights_get_an_rgb_input_of_at_least_32_pixels() -> None:
    """keras.applications' minimum for ImageNet weights: the schema's for every size (inputs are RGB)."""
    with pytest.raises(
        ParamsError, match=r"models\.resnet50\.image_size\.0: Input should be greater than or"
    ):
        accepted({"models.resnet50.weights": "imagenet", "models.resnet50.image_size": [16, 16]})


def test_the_official_folds_need_the_kaggle_source() -> None:
    line = refused({"split.strategy": "official"})
    assert line.startswith("split.strategy: official uses the folds of the Kaggle Folds.csv, and data.source")
    assert accepted({"split.strategy": "official", "data.source": "kaggle"}).split.strategy == "official"


def test_snapshots_within_every_models_epochs() -> None:
    none = {"train.validation": "none", "train.lr_schedule": "cosine"}
    line = refused({**none, "train.snapshot_epochs": [6]})
    assert line == (
        "train.snapshot_epochs: epoch 6 is beyond the epochs of a model: vgg19 trains 5; lower "
        "train.snapshot_epochs or raise those models' epochs"
    )
    assert accepted({**none, "train.snapshot_epochs": [5]}).train.snapshot_epochs == [5]
    # with pretrained weights, phase 1's head epochs count too: 3 + 5
    pretrained = {**none, "models.vgg19.weights": "imagenet", "train.snapshot_epochs": [8]}
    assert accepted(pretrained).models.vgg19.weights == "imagenet"


def test_snapshots_hold_one_network_not_a_seed_ensemble() -> None:
    none = {"train.validation": "none", "train.lr_schedule": "cosine", "train.snapshot_epochs": [2]}
    line = refused({**none, "models.custom.seeds": 2})
    assert line == (
        "train.snapshot_epochs: a snapshot holds the weights of one network, and models.custom.seeds: 2 "
        "ask for seed ensembles; choose the epochs with one network per model (seeds 1), then train the "
        "ensemble without snapshots"
    )
    assert (
        accepted({**none, "train.snapshot_epochs": []} | {"models.custom.seeds": 2}).models.custom.seeds == 2
    )


@pytest.mark.parametrize("name", available(PROJECT_ROOT / "profiles"))
def test_the_profiles_and_the_test_fixtures_still_load(name: str) -> None:
    load_profile(name, PROJECT_ROOT / "profiles")
    accepted(TINY)
    accepted(flatten(tiny_run_params().model_dump(mode="json")))


def test_the_old_tutorial_step_stops_a_stage_at_once_writing_nothing(tmp_path: Path) -> None:
    params = apply(Params().model_dump(mode="json"), {"train.image_size": [224, 224], "train.epochs": 30})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "stages.ingest"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and errors == ["error: params.yaml: invalid params"], result.stderr
    assert "train.image_size" in result.stderr and "train.patch_scale" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
    print(f"refused in {took:.2f} s")
    assert took < 10  # about 0.7 s on an idle 2-core CPU: the imports, then the params


def test_the_scaled_field_rounds_half_to_even_and_keeps_a_pixel() -> None:
    assert scaled_size((230, 350), 0.5) == (115, 175)
    assert scaled_size((230, 350), 1.0) == (230, 350)
    assert scaled_size((5, 7), 0.5) == (2, 4)  # 2.5 -> 2 and 3.5 -> 4, as Python and tf.round round
    assert scaled_size((230, 350), 0.001) == (1, 1)  # never an empty field


def test_the_scaled_field_is_computed_in_one_place() -> None:
    """Every Python computation of the scaled field calls coherence.scaled_size; the one other is the
    TensorFlow twin in input_pipeline.random_patches (tf.round on a tensor, kept: see its comment)."""
    by_hand = re.compile(r"(?<![.\w])round\([^()\n]*\*\s*[\w.]*patch_scale\b")
    found = [
        f"{path.relative_to(PROJECT_ROOT)}: {match.group(0)}"
        for folder in ("breakhis", "stages", "commands", "benchmarks")
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if path.name != "coherence.py"
        for match in by_hand.finditer(path.read_text())
    ]
    assert not found, "use breakhis.pipeline.coherence.scaled_size:\n" + "\n".join(found)
