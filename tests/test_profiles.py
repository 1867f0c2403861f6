"""Named, versioned param sets (profiles/<name>.yaml): checked against the schema, applied as `-S`
overrides by commands.exp_run and commands.cross_validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from breakhis.pipeline.params import Params
from breakhis.pipeline.profiles import apply, available, load_profile
from breakhis.pipeline.train_params import fit_settings
from commands import cross_validate, exp_run
from tests.conftest import PROJECT_ROOT

PROFILES = PROJECT_ROOT / "profiles"


def write(folder: Path, name: str, content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


@pytest.mark.parametrize("name", available(PROFILES))
def test_every_shipped_profile_is_valid_and_its_overrides_rebuild_it(name: str) -> None:
    profile = load_profile(name, PROFILES)
    assert profile.version >= 1 and profile.description
    # each -S value parses back (as YAML, as dvc exp run does) to the profile's value
    parsed = {o.split("=", 1)[0]: yaml.safe_load(o.split("=", 1)[1]) for o in profile.overrides()}
    assert parsed == profile.params
    Params.model_validate(apply(Params().model_dump(mode="json"), profile.params))


def test_the_real_data_profile_trains_on_every_patient() -> None:
    params = Params.model_validate(
        apply(Params().model_dump(mode="json"), load_profile("real-patches", PROFILES).params)
    )
    assert params.data.source == "breakhis" and params.train.validation == "none"
    assert params.train.input == "patches" and params.evaluate.calibration == "none"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"version": 1, "description": "x", "params": {"train": {"epochz": 3}}},
            "bad.yaml: invalid params\n  train.epochz: unknown key",
        ),
        (
            {"version": 1, "description": "x", "params": {"train": {"validation": "none"}}},
            "bad.yaml: invalid params\n  train.lr_schedule: plateau halves the rate",
        ),
        (  # a profile written before the per-model sections left train
            {"version": 1, "description": "x", "params": {"train": {"vgg19": {"epochs": 3}}}},
            "bad.yaml: invalid params\n  train.vgg19.epochs: the per-model settings moved to models.vgg19 "
            "(models.vgg19.epochs)",
        ),
        (
            {"version": 0, "description": "x", "params": {"seed": 1}},
            "version: 0 is not a positive whole number",
        ),
        ({"description": "x", "params": {"seed": 1}}, "holds exactly `version`, `description` and `params`"),
        ({"version": 1, "description": "x", "params": {}}, "params: expected the keys to set"),
        (
            "version: 1\nversion: 2\ndescription: x\nparams: {seed: 1}\n",
            "not valid YAML: duplicate key 'version'",
        ),
    ],
)
def test_a_bad_profile_is_refused_naming_the_file_and_key(
    tmp_path: Path, content: object, message: str
) -> None:
    write(tmp_path, "bad", content)
    with pytest.raises(ValueError) as refused:
        load_profile("bad", tmp_path)
    assert message in str(refused.value) and str(tmp_path / "bad.yaml") in str(refused.value)


def test_an_unknown_profile_names_the_ones_there(tmp_path: Path) -> None:
    write(tmp_path, "one", {"version": 1, "description": "x", "params": {"seed": 1}})
    with pytest.raises(ValueError, match=r"--profile two: no .*two.yaml \(profiles here: one\)"):
        load_profile("two", tmp_path)


def test_exp_run_prints_the_profile_then_the_users_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    exp_run.main(["--profile", "real-patches", "--print", "-S", "data.path=/data/x.tar.gz", "-n", "real"])
    command = capsys.readouterr().out.strip()
    assert command.startswith("dvc exp run -S data.source=breakhis ")
    assert "-S train.validation=none" in command and "-S 'data.magnifications=[40, 100, 200, 400]'" in command
    assert command.endswith("-S data.path=/data/x.tar.gz -n real")  # the user's last: they win


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["-S", "train.epochs=-3"],
            r"params.yaml --profile real-patches -Strain.epochs=-3: invalid params\n"
            r"  train.epochs: Input should be greater than 0",
        ),
        (["--set-param", "models.vgg19.dropout=2"], r"models.vgg19.dropout: Input should be less than"),
        (["-S", "train.epochs"], r"-S train.epochs: expected key=value"),
        (["-Sevaluate.members=[densenet]"], r"evaluate.members.0: Input should be 'custom', 'vgg19' or"),
        (
            ["-S", "train.custom.epochs=50"],
            r"\n  train.custom.epochs: the per-model settings moved to models.custom "
            r"\(models.custom.epochs\)",
        ),
    ],
    ids=["negative epochs", "--set-param", "no value", "attached -S", "a per-model key of the old layout"],
)
def test_exp_run_checks_the_users_values_before_printing(
    sets: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=message):
        exp_run.main(["--profile", "real-patches", "--print", *sets])
    assert capsys.readouterr().out == ""


def test_a_profile_may_not_set_what_the_cross_validation_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "profiles", "folded", {"version": 1, "description": "x", "params": {"split": {"fold": 2}}}
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"-S split.fold=2: split.fold is set by this command"):
        cross_validate.main(["--profile", "folded"])
    with pytest.raises(ValueError, match="--summarise trains nothing: --profile"):
        cross_validate.main(["--summarise", "--profile", "folded"])


def test_the_gpu_profile_is_the_seeds_recipe_and_valid() -> None:
    """ImageNet weights for both backbones in two phases, 224x224, every magnification, mixed
    precision, early stopping on validation. Not trained here: no ImageNet download and no GPU."""
    profile = load_profile("gpu-imagenet", PROFILES)
    params = Params.model_validate(apply(Params().model_dump(mode="json"), profile.params))
    train = params.train
    assert params.data.source == "breakhis" and params.data.magnifications == [40, 100, 200, 400]
    assert train.input == "field" and train.image_size == (224, 224) and train.mixed_precision
    assert train.validation == "split" and params.evaluate.threshold == 0.5
    for backbone in (params.models.vgg19, params.models.resnet50):
        assert backbone.weights == "imagenet" and backbone.head_epochs > 0 and backbone.fine_tune_layers > 0
    for name in ("custom", "vgg19", "resnet50"):  # every model at 224x224, with its own epochs
        assert fit_settings(train, params.models.of(name)).image_size == (224, 224)
        assert params.models.of(name).epochs is not None
    # an air-gapped runner points the weights at local files instead: still valid
    local = {
        **profile.params,
        "models.vgg19.weights": "/w/vgg19_notop.h5",
        "models.resnet50.weights": "r.weights.h5",
    }
    Params.model_validate(apply(Params().model_dump(mode="json"), local))


def test_exp_run_prints_the_gpu_profile(capsys: pytest.CaptureFixture[str]) -> None:
    exp_run.main(["--profile", "gpu-imagenet", "--print", "-S", "data.path=/data/BreaKHis_v1.tar.gz"])
    command = capsys.readouterr().out.strip()
    assert command.startswith("dvc exp run -S data.source=breakhis ")
    for override in (
        "models.vgg19.weights=imagenet",
        "models.resnet50.weights=imagenet",
        "train.mixed_precision=true",
    ):
        assert f"-S {override}" in command
    assert "-S 'train.image_size=[224, 224]'" in command
