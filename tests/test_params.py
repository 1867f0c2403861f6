"""params.yaml validation: the shipped file is the schema's defaults, rendered; bad keys and types are
named (the catalogue of bad values: tests/test_bad_input_params.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from breakhis.modeling.views import training_view
from breakhis.pipeline.params import Params, ParamsError
from breakhis.pipeline.params_file import load_params, render_params
from breakhis.pipeline.train_params import fit_settings, upgrade_recorded
from tests.conftest import PROJECT_ROOT


def write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def shipped() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def test_the_shipped_params_are_valid() -> None:
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params.data.source == "synthetic"
    assert params.train.image_size == (64, 64)


def test_params_yaml_and_the_schema_cannot_disagree() -> None:
    """One set of defaults: params.yaml is generated from the schema
    (`python -m breakhis.pipeline.params_file`), so a model used away from params.yaml (predict reads
    its description) sees what it was trained with."""
    text = (PROJECT_ROOT / "params.yaml").read_text()
    assert text == render_params(), (
        "params.yaml differs from the schema: run `python -m breakhis.pipeline.params_file`"
    )
    assert load_params(PROJECT_ROOT / "params.yaml") == Params()


def test_every_key_is_described() -> None:
    """params.yaml's comments and the params reference come from these descriptions."""

    def undescribed(section: type[BaseModel], prefix: str) -> list[str]:
        missing = []
        for key, field in section.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                missing += undescribed(annotation, f"{prefix}{key}.")
            elif not field.description:
                missing.append(prefix + key)
        return missing

    assert undescribed(Params, "") == []


def test_rendered_params_round_trip_other_values() -> None:
    """Rendering is exact for every value kind (floats below 1e-4 included: PyYAML reads 1e-05 as text)."""
    params = Params.model_validate(
        {
            "train": {"seed": 7, "cache": False},
            "models": {"vgg19": {"fine_tune_learning_rate": 3e-6}},
            "evaluate": {"threshold": "f1"},
        }
    )
    assert Params.model_validate(yaml.safe_load(render_params(params))) == params


def test_a_model_overrides_the_shared_training_values(tmp_path: Path) -> None:
    params = shipped()
    params["train"].update(patches_per_image=4, epochs=8)
    params["models"]["vgg19"].update(patches_per_image=1, epochs=3, patience=2)
    loaded = load_params(write(tmp_path, params))
    train, vgg19, resnet50 = loaded.train, loaded.models.vgg19, loaded.models.resnet50
    assert (fit_settings(train, vgg19).patches_per_image, fit_settings(train, vgg19).epochs) == (1, 3)
    assert fit_settings(train, resnet50).patches_per_image == 4
    assert (fit_settings(train, vgg19).patience, fit_settings(train, resnet50).patience) == (2, 4)
    assert training_view(train, vgg19).patches_per_image == 1
    assert training_view(train, resnet50).patches_per_image == 4


def test_unknown_key_is_named(tmp_path: Path) -> None:
    raw = shipped()
    raw["train"]["epoch"] = 3
    with pytest.raises(ParamsError, match=r"train\.epoch: unknown key"):
        load_params(write(tmp_path, raw))


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("train", "epochs", "many", "train.epochs"),
        ("train", "image_size", [64], "train.image_size"),
        ("data", "source", "imagenet", "data.source"),
        ("data", "magnifications", [50], "data.magnifications.0"),
        ("split", "test_size", 1.5, "split.test_size"),
    ],
)
def test_wrong_values_are_named(tmp_path: Path, section: str, key: str, value: object, named: str) -> None:
    raw = shipped()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=named.replace(".", r"\.")):
        load_params(write(tmp_path, raw))


@pytest.mark.parametrize("path", [None, ""])
def test_real_sources_need_a_path(tmp_path: Path, path: str | None) -> None:
    raw = shipped()
    raw["data"]["source"] = "breakhis"
    raw["data"]["path"] = path
    with pytest.raises(ParamsError, match="data.path is required"):
        load_params(write(tmp_path, raw))


def test_unknown_on_error_is_named(tmp_path: Path) -> None:
    raw = shipped()
    raw["ingest"]["on_error"] = "ignore"
    with pytest.raises(ParamsError, match=r"ingest\.on_error"):
        load_params(write(tmp_path, raw))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_a_union_error_names_the_key_alone(tmp_path: Path) -> None:
    """Not pydantic's tags for the members of a union (`evaluate.threshold.literal['youden','f1']`)."""
    raw = shipped()
    raw["evaluate"]["threshold"] = "middle"
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, raw))
    lines = str(error.value).splitlines()[1:]
    assert lines and all(line.startswith("  evaluate.threshold: ") for line in lines), lines


def test_a_relation_between_keys_is_named_once(tmp_path: Path) -> None:
    raw = shipped()
    raw["train"]["min_epochs"] = 6
    with pytest.raises(ParamsError) as error:
        load_params(write(tmp_path, raw))
    assert str(error.value).splitlines()[1] == (
        "  train.min_epochs: 6 is above the epochs of a model: vgg19 trains 5 (models.vgg19.epochs); "
        "lower train.min_epochs or raise the epochs"
    )


def test_the_machine_is_checked_where_the_stages_run_not_in_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Params a model was trained with stay valid on a smaller machine: its description holds them."""
    from breakhis.pipeline.machine import MEMORY_VARIABLE
    from breakhis.pipeline.params_file import validate_params

    monkeypatch.setenv(MEMORY_VARIABLE, "1")
    big = {  # patches of 2048x2048 at scale 1 from fields of 2048x3072, generated at that size
        "data": {"synthetic": {"image_size": [2048, 3072]}},
        "ingest": {"image_size": [2048, 3072]},
        "train": {"image_size": [2048, 2048], "patch_scale": 1.0},
        "augment": {"workers": 10_000},
    }
    assert Params.model_validate(big).augment.workers == 10_000
    assert validate_params(big, Path("params.yaml"), machine=False).train.image_size == (2048, 2048)
    with pytest.raises(ParamsError, match=r"(?s)too much for this machine.*augment\.workers: 10000 is above"):
        validate_params(big, Path("params.yaml"))


def test_recorded_params_of_the_old_layout_are_read_in_todays() -> None:
    """An older experiment's params.yaml kept the per-model sections under `train`: read back as
    recorded params (`upgrade_recorded`) they are under `models`; as params, they are refused."""
    old = {"seed": 1, "train": {"epochs": 4, "custom": {"epochs": 7}, "vgg19": {"weights": "imagenet"}}}
    new = upgrade_recorded(old)
    assert new == {
        "seed": 1,
        "train": {"epochs": 4},
        "models": {"custom": {"epochs": 7}, "vgg19": {"weights": "imagenet"}},
    }
    assert Params.model_validate(new).models.custom.epochs == 7
    assert upgrade_recorded(new) == new  # today's layout is left as it is
    assert old["train"]["custom"] == {"epochs": 7}  # the recorded mapping itself is not changed
    with pytest.raises(ValidationError, match=r"train.custom.epochs: the per-model settings moved to models"):
        Params.model_validate(old)
    both = {"train": {"custom": {"epochs": 7}}, "models": {"custom": {"epochs": 9}}}
    assert upgrade_recorded(both)["models"]["custom"] == {"epochs": 9}  # today's key, where both are
