"""Running the real project in a temporary git repository: copy, commit, run DVC and stages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from breakhis.pipeline.yaml_text import yaml_value
from commands.plots_page import TEMPLATE, write_plots_template
from tests.conftest import PROJECT_ROOT

PROJECT_FILES = (
    "breakhis",
    "stages",
    "commands",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
    "uv.lock",  # a DVC dependency of the train and evaluate stages
    "profiles",  # named param sets (commands.cross_validate --profile, commands.exp_run)
    "data/raw/README.md",  # data.path's default, ingest's DVC dependency
)

# Small enough for a 2-core CPU: 60 synthetic images, 32x32 training, 2 epochs (3 for the custom CNN).
TINY = {
    "data.synthetic.benign_patients": 5,
    "data.synthetic.malignant_patients": 10,
    "data.synthetic.images_per_magnification": 2,
    "data.synthetic.image_size": [96, 128],
    "data.magnifications": [100, 400],
    "ingest.image_size": [64, 96],
    "train.image_size": [32, 32],
    "train.epochs": 2,
    "train.min_epochs": 2,  # at most every model's epochs
    "train.batch_size": 16,
    "models.custom.epochs": 3,  # its own default (30) would dominate the run
    "evaluate.bootstrap_resamples": 200,
}


def environment() -> dict[str, str]:
    """This Python's bin first on PATH, so stage commands (`python -m stages.train`) use it."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(args: list[str], cwd: Path, *, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run a command; return its stdout and stderr; on failure (when checked) show them."""
    result = subprocess.run(args, cwd=cwd, env=env or environment(), capture_output=True, text=True)
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output}"
    elif result.returncode == 0:
        raise AssertionError(f"{' '.join(args)} succeeded but was expected to fail:\n{output}")
    return output


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def stage(module: str, *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    """`python -m <module>` (a stage or a command, e.g. `stages.train`, `commands.predict`)."""
    return run([sys.executable, "-m", module, *args], cwd, check=check, env=env)


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--allow-empty", "-qm", message], repo)


def make_repo(path: Path) -> Path:
    """A git repository holding a copy of the project, committed."""
    for name in PROJECT_FILES:
        source, target = PROJECT_ROOT / name, path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    # the page `dvc plots show/diff` fill, as .dvc/config names it (generated: run.py writes it)
    template = PROJECT_ROOT / TEMPLATE
    if not template.is_file():
        write_plots_template(template)
    shutil.copy2(template, path / TEMPLATE)
    run(["git", "init", "-q"], path)
    commit(path, "project")
    return path


def set_args(overrides: dict[str, object]) -> list[str]:
    """`-S key=value` arguments for `dvc exp run`."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={yaml_value(value)}"]
    return args


def write_params(repo: Path, overrides: dict[str, object]) -> None:
    """Set dotted keys in the repo's params.yaml (as `dvc exp run -S` would)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
