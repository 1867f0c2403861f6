#!/usr/bin/env python3
"""The project's entry points. Each sets up .venv/ from the lock file (uv.lock) on first use and
reuses it; when uv.lock or pyproject.toml changes, the next command syncs .venv/ to them.

python3 run.py repro [DVC ARGS]    dvc repro of params.yaml (embedded synthetic data by default)
python3 run.py test [PYTEST ARGS]  the test suite, end-to-end pipeline runs included
python3 run.py check               lint, format and type checks (the pre-commit hooks)
python3 run.py docs [MKDOCS ARGS]  build the documentation site into site/ (mkdocs build --strict)
python3 run.py dvc ARGS            any dvc command inside the virtualenv (exp run, exp show, ...)
python3 run.py gpu-check [OPTIONS]  a runner's five-minute check: GPU seen, mixed precision, XLA, the
                                   multi-device path, images/s per model at 224x224 (GPU and CPU)
python3 run.py sync [EXTRA ...]    install exactly the locked environment, with the dev tools and
                                   these extras (gpu, s3, gs, azure); later syncs keep them
python3 run.py lock [UV ARGS]      refresh uv.lock after editing pyproject.toml (`uv lock`), then
                                   sync; `lock --upgrade` moves every package to its newest release
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
LOCK = ROOT / "uv.lock"
# what .venv was last synced from; the model card reads it (breakhis/pipeline/environment.py)
SYNCED = VENV / "breakhis-lock.json"
EXTRAS = ("gpu", "s3", "gs", "azure")
PLOTS_TEMPLATE = ROOT / ".dvc" / "plots-offline.html"  # generated: commands/plots_page.py


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def project_digest() -> str:
    """pyproject.toml's: the project's own packages and console scripts are installed from it (a
    moved module or a new script needs a sync even when uv.lock is the same)."""
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def synced() -> dict:
    try:
        return json.loads(SYNCED.read_text())
    except (OSError, ValueError):
        return {}


def locked_uv() -> list[str]:
    """pip requirement lines for the uv release uv.lock pins, with every wheel's hash."""
    import tomllib

    packages = tomllib.loads(LOCK.read_text())["package"]
    uv = next((p for p in packages if p["name"] == "uv"), None)
    if uv is None:
        sys.exit(f"{LOCK}: uv is not locked (it belongs in the dev extra of pyproject.toml)")
    hashes = " ".join(f"--hash={wheel['hash']}" for wheel in uv["wheels"])
    return [f"uv=={uv['version']} {hashes}"]


def uv(*args: str) -> list[str]:
    return [str(BIN / "uv"), *args]


def uv_environment() -> dict[str, str]:
    """uv works on .venv/ with this Python, never downloads one, and is quiet about hard links
    when its cache and .venv/ sit on different file systems."""
    return {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(VENV),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": os.environ.get("UV_LINK_MODE", "copy"),
    }


def sync(extras: list[str]) -> None:
    """Make .venv/ exactly the locked environment (dev tools and `extras` included)."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        sys.exit(f"unknown extra(s) {', '.join(unknown)}: choose from {', '.join(EXTRAS)}")
    if not LOCK.is_file():
        sys.exit(f"{LOCK} is missing: restore it with `git checkout -- uv.lock` (it pins the environment)")
    if not (BIN / "python").exists():
        print("run.py: creating .venv/", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    if not (BIN / "uv").exists():  # bootstrap: the locked uv, checked against the lock's hashes
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as requirements:
            requirements.write("\n".join(locked_uv()) + "\n")
        # -qq: errors only; a machine's own pip settings (an index folder that is not there) would
        # print warnings about that machine on every fresh clone's first run
        pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-qq"]
        subprocess.run([*pip, "--require-hashes", "-r", requirements.name], check=True)
        os.unlink(requirements.name)
    print(f"run.py: syncing .venv/ to uv.lock (extras: {', '.join(['dev', *extras])})", file=sys.stderr)
    # --compile-bytecode: pip compiles .pyc files at install, uv does not; where Python may not write
    # them (PYTHONDONTWRITEBYTECODE, read-only images) every stage and dvc process would recompile
    # TensorFlow's sources at import: the test suite took 28 min instead of 22 here
    extra_args = (a for e in ["dev", *extras] for a in ("--extra", e))
    command = uv("sync", "--locked", "--compile-bytecode", *extra_args)
    if subprocess.run(command, cwd=ROOT, env=uv_environment()).returncode != 0:
        sys.exit(
            "run.py: could not install from uv.lock. If pyproject.toml changed, refresh the lock with "
            "`python3 run.py lock` and commit uv.lock."
        )
    record = {"uv.lock": lock_digest(), "pyproject.toml": project_digest(), "extras": sorted(extras)}
    SYNCED.write_text(json.dumps(record) + "\n")
    write_plots_template()


def write_plots_template() -> None:
    """The page `dvc plots show` fills (.dvc/config: plots.html_template), with Vega, Vega-Lite and
    Vega-Embed inline from the locked vl-convert-python, so its charts render offline."""
    subprocess.run(
        [str(BIN / "python"), "-m", "commands.plots_page", str(PLOTS_TEMPLATE)], cwd=ROOT, check=True
    )


def ensure_virtualenv() -> None:
    """Sync .venv/ when it was not synced from this uv.lock and pyproject.toml (keeping the extras
    it had), and write the offline plots page when it is missing."""
    state = synced()
    if not LOCK.is_file() or (state.get("uv.lock"), state.get("pyproject.toml")) != (
        lock_digest(),
        project_digest(),
    ):
        sync(state.get("extras", []))
    elif not PLOTS_TEMPLATE.is_file():
        write_plots_template()


def ensure_git_repo() -> None:
    """DVC needs a git repository; a downloaded source archive has none."""
    if not (ROOT / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=ROOT, check=True)


def params_readable(env: dict[str, str]) -> bool:
    """Read params.yaml as the stages do before DVC reads it: an alias bomb, a non-UTF-8 byte or
    broken YAML is refused in a second with one line (DVC's own reader expands every alias)."""
    check = [str(BIN / "python"), "-m", "breakhis.pipeline.yaml_text", "params.yaml"]
    return subprocess.call(check, cwd=ROOT, env=env) == 0


COMMANDS = ("repro", "test", "check", "docs", "dvc", "sync", "lock", "gpu-check")
HELP = ("-h", "--help")
# where the wrapped tool's own options are listed (`run.py COMMAND --help` shows run.py's usage)
WRAPPED_HELP = {
    "repro": "python3 run.py dvc repro --help",
    "test": ".venv/bin/pytest --help",
    "check": ".venv/bin/pre-commit run --help",
    "docs": ".venv/bin/mkdocs build --help",
    "dvc": "python3 run.py dvc COMMAND --help",
    "lock": ".venv/bin/uv lock --help",
    "gpu-check": ".venv/bin/python -m commands.gpu_check --help",
}


def usage(command: str) -> str:
    """`command`'s lines of the module docstring, as a usage message; nothing is read or run."""
    lines = __doc__.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"python3 run.py {command} "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    text = "usage: " + "\n".join(lines[start:end])
    if command in WRAPPED_HELP:
        text += f"\nits own options: {WRAPPED_HELP[command]}"
    return text


def main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in HELP:  # --help: usage on stdout, exit 0, nothing set up or read
        print(__doc__.strip())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if args[:1] and args[0] in HELP:
        print(usage(command))
        return 0
    if command == "sync":
        sync(args)
        return 0
    if command == "lock":
        if not (BIN / "uv").exists():
            sync(synced().get("extras", []))
        if subprocess.call(uv("lock", *args), cwd=ROOT, env=uv_environment()) != 0:
            return 1
        sync(synced().get("extras", []))
        return 0
    ensure_virtualenv()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    if command == "test":
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT, env=env)
    if command == "gpu-check":
        return subprocess.call([str(BIN / "python"), "-m", "commands.gpu_check", *args], cwd=ROOT, env=env)
    if command == "docs":  # a broken link or anchor, or a page that cannot be generated, fails the build
        build = [str(BIN / "mkdocs"), "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), *args]
        # NO_MKDOCS_2_WARNING: mkdocs-material's banner about its end of life, not a build warning
        return subprocess.call(build, cwd=ROOT, env={**env, "NO_MKDOCS_2_WARNING": "1"})
    ensure_git_repo()
    if command == "check":
        hooks = [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure", *args]
        return subprocess.call(hooks, cwd=ROOT, env=env)
    if (ROOT / "params.yaml").exists() and not params_readable(env):
        return 1
    dvc_args = ["repro", *args] if command == "repro" else args
    return subprocess.call([str(BIN / "dvc"), *dvc_args], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
