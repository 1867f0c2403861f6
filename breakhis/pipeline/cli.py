"""The command line of every entry point: one parser helper, so that every `--help` names the
command as it is typed (`python -m commands.pr_comment`, not `pr_comment.py`) and exits 0 before
anything is read or written.

A command parses its command line first, before it reads params, data or models, and before
TensorFlow is imported: `--help` is instant and has no side effect (tests/test_help.py runs every
entry point with `--help` in a copy of the project and finds no file changed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NO_OPTIONS = (
    "Takes no options: it reads params.yaml (change a param there, or with `dvc exp run -S key=value`)."
)


def prog_name(module: str, script: str | None = None) -> str:
    """How the user ran the command: `python -m <module>`, or the console `script` (e.g.
    `breakhis-predict`) when that is what was run."""
    if script is not None and Path(sys.argv[0]).name == script:
        return script
    return f"python -m {module}"


def command_parser(
    module: str, doc: str | None, *, script: str | None = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """The argument parser of the command `module` (its dotted name, e.g. `stages.ingest`), its
    docstring as the description, laid out as written."""
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return argparse.ArgumentParser(prog=prog_name(module, script), description=doc, **kwargs)


def parse_no_options(module: str, doc: str | None, argv: Sequence[str] | None = None) -> None:
    """The command line of a stage that takes no options: `--help` prints its usage and exits 0,
    anything else given is refused (exit 2) before the stage reads or writes anything."""
    command_parser(module, doc, epilog=NO_OPTIONS).parse_args(argv)
