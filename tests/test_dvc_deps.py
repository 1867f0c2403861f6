"""dvc.yaml lists exactly the project code each stage runs, so an edit to any of it re-runs the stage.

The imports of each stage's command are followed through the project (breakhis.pipeline.code, the
walk that also gives a model its code version) and compared with the stage's `deps` that are Python
files. Exempt: the packages' `__init__.py` files, which hold a docstring only (checked below), so
no edit to them can change what a stage computes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from breakhis.pipeline.code import code_files
from tests.conftest import PROJECT_ROOT, project_files


def declared_code(stage: dict) -> set[str]:
    return {dep for dep in stage.get("deps", []) if isinstance(dep, str) and dep.endswith(".py")}


STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_exactly_the_code_it_imports(name: str) -> None:
    stage = STAGES[name]
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], f"{name}: cmd should run a module: {stage['cmd']}"
    imported = set(code_files(command[2]))
    declared = declared_code(stage)
    assert not imported - declared, f"{name}: dvc.yaml misses deps {sorted(imported - declared)}"
    assert not declared - imported, (
        f"{name}: dvc.yaml lists code it never imports {sorted(declared - imported)}"
    )


def test_package_init_files_hold_no_code() -> None:
    """The exemption above holds only while __init__.py files are docstrings."""
    for init in project_files("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), (
            f"{init}: holds code; list it in dvc.yaml deps"
        )


def test_train_stages_share_their_params_but_their_own_section() -> None:
    """DVC templating cannot express the shared list once without renaming the stages (`foreach` makes
    `train@custom`), so the three lists are checked to differ only in the model's own section."""
    lists = {
        name.removeprefix("train-"): stage["params"]
        for name, stage in STAGES.items()
        if name.startswith("train-")
    }
    assert set(lists) == {"custom", "vgg19", "resnet50"}
    shared = {model: [key for key in keys if key != f"models.{model}"] for model, keys in lists.items()}
    assert all(f"models.{model}" in keys for model, keys in lists.items())
    assert shared["custom"] == shared["vgg19"] == shared["resnet50"]


def test_the_dependency_walk_sees_lazy_and_package_imports(tmp_path: Path) -> None:
    """The walk itself: a function-level import and `from package import <module>` are followed."""
    deps = code_files("commands.predict")
    assert "breakhis/modeling/gradcam.py" in deps  # imported inside a function of predict
    assert "breakhis/pipeline/params.py" in deps
    assert all(not dep.endswith("__init__.py") for dep in deps)


def test_the_walk_refuses_a_module_that_is_not_there() -> None:
    """A renamed stage must not give every model the digest of no code at all."""
    with pytest.raises(ValueError, match="stages.no_such_stage: not a module of the project"):
        code_files("stages.no_such_stage")
