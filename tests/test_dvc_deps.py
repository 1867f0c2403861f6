"""dvc.yaml lists exactly the project code each stage runs, so an edit to any of it re-runs the stage.

The imports of each stage's command are followed through the project (every `import`, also those
inside functions: a lazy import still runs) and compared with the stage's `deps` that are Python
files. Exempt: the packages' `__init__.py` files, which hold a docstring only (checked below), so
no edit to them can change what a stage computes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

PACKAGE = "stages"


def module_file(module: str) -> Path | None:
    """The project file of a dotted module name, or None when it is not project code."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = PROJECT_ROOT / Path(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None  # a package: its __init__.py is exempt (docstring only)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def code_dependencies(module: str) -> set[str]:
    """Project files (relative, posix) that running `python -m <module>` imports, transitively."""
    seen: set[Path] = set()
    pending = [module_file(module)]
    while pending:
        path = pending.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        pending += [module_file(name) for name in imported_modules(path)]
    return {path.relative_to(PROJECT_ROOT).as_posix() for path in seen}


def declared_code(stage: dict) -> set[str]:
    return {dep for dep in stage.get("deps", []) if isinstance(dep, str) and dep.endswith(".py")}


STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_exactly_the_code_it_imports(name: str) -> None:
    stage = STAGES[name]
    command = stage["cmd"].split()
    assert command[:2] == ["python", "-m"], f"{name}: cmd should run a module: {stage['cmd']}"
    imported = code_dependencies(command[2])
    declared = declared_code(stage)
    assert not imported - declared, f"{name}: dvc.yaml misses deps {sorted(imported - declared)}"
    assert not declared - imported, (
        f"{name}: dvc.yaml lists code it never imports {sorted(declared - imported)}"
    )


def test_package_init_files_hold_no_code() -> None:
    """The exemption above holds only while __init__.py files are docstrings."""
    for init in (PROJECT_ROOT / PACKAGE).rglob("__init__.py"):
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
    shared = {model: [key for key in keys if key != f"train.{model}"] for model, keys in lists.items()}
    assert all(f"train.{model}" in keys for model, keys in lists.items())
    assert shared["custom"] == shared["vgg19"] == shared["resnet50"]


def test_the_dependency_walk_sees_lazy_and_package_imports(tmp_path: Path) -> None:
    """The checker itself: a function-level import and `from stages import <module>` are followed."""
    deps = code_dependencies("stages.predict")
    assert "stages/modeling/gradcam.py" in deps  # imported inside a function of predict
    assert "stages/pipeline/params.py" in deps
    assert all(not dep.endswith("__init__.py") for dep in deps)
