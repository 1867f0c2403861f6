#!/usr/bin/env python3
"""The project's entry points. Each sets up a virtualenv in .venv/ on first use and reuses it.

python3 run.py repro [DVC ARGS]    dvc repro of params.yaml (embedded synthetic data by default)
python3 run.py test [PYTEST ARGS]  the test suite, end-to-end pipeline runs included
python3 run.py dvc ARGS            any dvc command inside the virtualenv (exp run, exp show, ...)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_virtualenv() -> None:
    """Create .venv and install the project (with dev tools) when pyproject.toml changed."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("run.py: creating .venv/", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    stamp = VENV / f".installed-{hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()[:16]}"
    if stamp.exists():
        return
    print("run.py: installing the project and its dependencies into .venv/ (a few minutes)", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()


def ensure_git_repo() -> None:
    """DVC needs a git repository; a downloaded source archive has none."""
    if not (ROOT / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"repro", "test", "check", "dvc"}:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    ensure_virtualenv()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    if command == "test":
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT, env=env)
    ensure_git_repo()
    if command == "check":
        hooks = [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure", *args]
        return subprocess.call(hooks, cwd=ROOT, env=env)
    dvc_args = ["repro", *args] if command == "repro" else args
    return subprocess.call([str(BIN / "dvc"), *dvc_args], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
