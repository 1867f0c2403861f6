"""The package's layers: the library below the commands, each subpackage importing only its own
layer and those below it, so a library module never reaches up into a stage or command (and no
import cycle can form between subpackages). Lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

# lowest first: params, paths, files and the task; the dataset; metrics and reports; models
LIBRARY = ("pipeline", "data", "evaluation", "modeling")
COMMANDS = len(LIBRARY)  # stages/<name>.py: the DVC stages and the commands


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in LIBRARY):
        return LIBRARY.index(parts[1])
    return COMMANDS


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `stages...` module the file imports, wherever the import is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stages":
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "stages"]
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    problems = []
    for path in sorted((PROJECT_ROOT / "stages").rglob("*.py")):
        name = module_name(path)
        if name == "stages":
            continue
        for line, target in imported(path):
            if layer(target) > layer(name):
                problems.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {name} imports {target}")
    assert not problems, "imports from a higher layer:\n" + "\n".join(problems)


def test_the_layers_are_what_the_test_says() -> None:
    assert layer("stages.pipeline.params") < layer("stages.data.dataset") < layer("stages.modeling.training")
    assert layer("stages.evaluation.cross_validation.pooled") == LIBRARY.index("evaluation")
    assert layer("stages.train") == layer("stages.cross_validate") == COMMANDS
    assert module_name(PROJECT_ROOT / "stages/evaluation/__init__.py") == "stages.evaluation"
