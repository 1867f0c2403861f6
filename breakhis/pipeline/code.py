"""The project's own code that a command runs: every project module that `python -m <module>`
imports, followed through every import, also those inside functions (a lazy import still runs).

dvc.yaml lists exactly these files as each stage's code deps (tests/test_dvc_deps.py), and a
model's description carries their digest as its code version: an edit to code the stage never runs
changes neither. The packages' `__init__.py` files are left out: they hold a docstring only
(checked by the same test), so no edit to them can change what a stage computes.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from breakhis.pipeline.paths import ENTRY_POINTS, LIBRARY

ROOT = Path(__file__).resolve().parents[2]  # the project: the library and the entry points
PACKAGES = (LIBRARY, *ENTRY_POINTS)


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The project file of a dotted module name, or None: not project code, or a package."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root / Path(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, anywhere in it; `from pkg import name` counts `pkg.name` too
    (the name may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def code_files(module: str, root: Path = ROOT) -> list[str]:
    """The project files (relative, posix, sorted) that running `python -m <module>` imports;
    ValueError when `module` is not a project module (a renamed stage must not digest nothing)."""
    start = module_file(module, root)
    if start is None:
        raise ValueError(
            f"{module}: not a module of the project's packages ({', '.join(PACKAGES)}) under {root}"
        )
    seen: set[Path] = set()
    pending: list[Path | None] = [start]
    while pending:
        path = pending.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        pending += [module_file(name, root) for name in imported_modules(path)]
    return sorted(path.relative_to(root).as_posix() for path in seen)


def code_digest(module: str, root: Path = ROOT) -> str:
    """SHA-256 over the names and bytes of `code_files(module)`: exact with or without git."""
    digest = hashlib.sha256()
    for name in code_files(module, root):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()
