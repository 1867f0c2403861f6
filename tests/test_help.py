"""`--help` everywhere, and never a side effect: every entry point (each module of stages/ and commands/ that
runs as a command, the `breakhis-predict` console script and every `python3 run.py` command) prints
its usage under the name the user typed and exits 0, in a copy of the project where afterwards no
file has been created, changed or removed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, command_modules

RUN_PY_COMMANDS = ("repro", "test", "check", "docs", "dvc", "sync", "lock", "gpu-check")


def entry_points() -> list[tuple[list[str], str]]:
    """(command line, the start of its usage) for every entry point."""
    points = [
        ([sys.executable, "-m", module, "--help"], f"usage: python -m {module} ")
        for module in command_modules()
    ]
    points += [
        (
            [sys.executable, "-m", "commands.runners", sub, "--help"],
            f"usage: python -m commands.runners {sub} ",
        )
        for sub in ("plan", "run", "summarise")
    ]
    script = Path(sys.executable).with_name("breakhis-predict")
    points.append(([str(script), "--help"], "usage: breakhis-predict "))
    points.append(([sys.executable, "run.py", "--help"], "The project's entry points."))
    points += [
        ([sys.executable, "run.py", command, "--help"], f"usage: python3 run.py {command} ")
        for command in RUN_PY_COMMANDS
    ]
    return points


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root, with its size and modification time."""
    state = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        state[path.relative_to(root).as_posix()] = (info.st_size, info.st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's files (git-tracked and new, not ignored) and its DVC outputs (data, models),
    without .venv/ or .git/."""
    copy = tmp_path_factory.mktemp("help") / "project"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, tracked):
        source = PROJECT_ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    for folder in ("data", "models", "snapshots", "metrics", "plots"):
        if (PROJECT_ROOT / folder).is_dir():
            shutil.copytree(PROJECT_ROOT / folder, copy / folder, dirs_exist_ok=True, symlinks=True)
    return copy


def test_every_command_module_is_walked() -> None:
    """The list comes from the source: a new command is covered without editing this test."""
    modules = command_modules()
    for expected in (
        "stages.ingest",
        "stages.evaluate",
        "commands.pr_comment",
        "breakhis.pipeline.params_file",
    ):
        assert expected in modules


@pytest.mark.parametrize(
    ("command", "usage"), entry_points(), ids=lambda v: " ".join(v[1:]) if isinstance(v, list) else None
)
def test_help_prints_usage_and_touches_nothing(project_copy: Path, command: list[str], usage: str) -> None:
    before = snapshot(project_copy)
    # bytecode caches are Python's, not the command's: kept out of the copy so the snapshot is exact
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(command, cwd=project_copy, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage), result.stdout[:300]
    after = snapshot(project_copy)
    changed = sorted(name for name in before.keys() & after.keys() if before[name] != after[name])
    assert (sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys()), changed) == (
        [],
        [],
        [],
    )
