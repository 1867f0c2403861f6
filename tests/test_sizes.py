"""Modules of one job: no module of the library, the stages or the commands over 500 lines, and no
function over 80 lines unless a comment on the line above its `def` says why (`# long: <reason>`).
A module that outgrows the limit is split along its seams (docs/reference/layout.md says where each
job lives), not trimmed line by line."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT, project_files

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
REASON = "# long:"


def long_functions(path: Path, root: Path = PROJECT_ROOT) -> list[str]:
    """`file:line name (N lines)` of every function over the limit without a reason above it."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        reason = lines[start - 2].strip().startswith(REASON) if start >= 2 else False
        if length > MAX_FUNCTION_LINES and not reason:
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_module_is_over_the_limit() -> None:
    sizes = {path: len(path.read_text().splitlines()) for path in project_files()}
    over = [f"{p.relative_to(PROJECT_ROOT)} ({n} lines)" for p, n in sizes.items() if n > MAX_MODULE_LINES]
    assert not over, f"modules over {MAX_MODULE_LINES} lines: split them along their seams:\n" + "\n".join(
        over
    )


def test_no_function_is_over_the_limit_without_a_reason() -> None:
    over = [entry for path in project_files() for entry in long_functions(path)]
    assert not over, (
        f"functions over {MAX_FUNCTION_LINES} lines with no `{REASON} <why>` comment above them:\n"
        + "\n".join(over)
    )


def test_the_checker_sees_a_long_function_and_its_reason(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "long.py"
    module.write_text(f"def short():\n    pass\n\n\n@decorated\ndef too_long():\n{body}\n")
    assert long_functions(module, tmp_path) == ["long.py:6 too_long (81 lines)"]
    module.write_text(f"# long: one table, read top to bottom\n@decorated\ndef too_long():\n{body}\n")
    assert long_functions(module, tmp_path) == []
