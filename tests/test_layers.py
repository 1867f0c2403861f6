"""The layers of the code: the library (`breakhis`) below what is run (`stages`, the DVC stages, and
`commands`, the rest), each library subpackage importing only its own layer and those below it, so a
library module never reaches up into an entry point (and no import cycle can form between
subpackages). Lazy imports inside functions count too. No entry point imports another: what two of
them share is library code.
"""

from __future__ import annotations

import ast
from pathlib import Path

from breakhis.pipeline.code import PACKAGES
from breakhis.pipeline.paths import ENTRY_POINTS, LIBRARY
from tests.conftest import PROJECT_ROOT, project_files

# lowest first: params, paths, files and the task; the dataset; metrics and reports; models
SUBPACKAGES = ("pipeline", "data", "evaluation", "modeling")
TOP = len(SUBPACKAGES)  # the entry points: stages/<name>.py, commands/<name>.py


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] == LIBRARY and len(parts) > 1:
        return SUBPACKAGES.index(parts[1])
    return TOP


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every project module the file imports, wherever the import is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] in PACKAGES]
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    problems = []
    for path in project_files():
        name = module_name(path)
        if name in PACKAGES:
            continue
        for line, target in imported(path):
            if layer(target) > layer(name):
                problems.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {name} imports {target}")
    assert not problems, "imports from a higher layer:\n" + "\n".join(problems)


def test_no_entry_point_imports_another() -> None:
    problems = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}: imports {target}"
        for path in project_files()
        if module_name(path).split(".")[0] in ENTRY_POINTS
        for line, target in imported(path)
        if target.split(".")[0] in ENTRY_POINTS
    ]
    assert not problems, "entry points that share code through each other:\n" + "\n".join(problems)


def test_the_layers_are_what_the_test_says() -> None:
    assert (
        layer("breakhis.pipeline.params")
        < layer("breakhis.data.dataset")
        < layer("breakhis.modeling.training")
    )
    assert layer("breakhis.evaluation.cross_validation.pooled") == SUBPACKAGES.index("evaluation")
    assert layer("stages.train") == layer("commands.cross_validate") == TOP > layer("breakhis.modeling")
    assert module_name(PROJECT_ROOT / "breakhis/evaluation/__init__.py") == "breakhis.evaluation"
    assert {"stages/train.py", "commands/predict.py", "breakhis/data/dataset.py"} <= {
        p.relative_to(PROJECT_ROOT).as_posix() for p in project_files()
    }
