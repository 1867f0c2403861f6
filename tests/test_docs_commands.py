"""Every command block of docs/tutorials/ and docs/how-to/ (tests/docs_blocks.py) either runs in the
test suite or names why not, and every command in them, run or not, still parses: each option of a
`python -m stages.X`, `breakhis-predict`, `python3 run.py` or `dvc` command line exists, and each
`-S key=value` (on top of its `--profile`) is a valid set of params. Cheap: nothing is trained.
The blocks without a marker are run for real by tests/test_pipeline.py."""

from __future__ import annotations

import argparse
import runpy
import sys
import tomllib
from typing import Any
from unittest import mock

import pytest

from breakhis.pipeline.matrix import apply_overrides, parse_override_sets
from breakhis.pipeline.params_file import read_params, validate_params
from breakhis.pipeline.paths import ENTRY_POINTS, PARAMS_FILE
from breakhis.pipeline.profiles import load_profile
from tests.conftest import PROJECT_ROOT, module_from_file
from tests.docs_blocks import Block, all_blocks, command_blocks

pytestmark = pytest.mark.filterwarnings(
    "ignore:'(stages|commands).*' found in sys.modules:RuntimeWarning"
)  # runpy

PYTHONS = ("python", "python3", ".venv/bin/python")
PREDICT = ("breakhis-predict", ".venv/bin/breakhis-predict")
# Programs whose command lines are shown, not checked here: each named with why
NOT_CHECKED = {
    "git": "git's own commands",
    "cd": "the shell's",
    "cp": "the shell's",
    "scp": "copies to another machine",
    "gh": "GitHub's CLI, needs a GitHub repository",
}
# What the tiny pipeline's repository (tests/test_pipeline.py) can run
RUNNABLE = {"dvc", "python", "breakhis-predict"}


class Parsed(BaseException):  # not an Exception: run_stage must not turn it into an exit status
    def __init__(self, namespace: argparse.Namespace, rest: list[str]) -> None:
        self.namespace, self.rest = namespace, rest


def parse_stage(module: str, args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Run `python -m module args` in this process up to its command line's parse (every command
    parses first, before it reads or writes anything: tests/test_help.py); return what it parsed
    and the arguments it left over. A bad option fails as the command would."""
    prog = f"python -m {module}"
    original = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        result = original(self, *a, **k)
        if self.prog == prog:
            raise Parsed(*result)
        return result

    with (
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", parse_known_args),
        mock.patch.object(sys, "argv", [module, *args]),
    ):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        except Parsed as parsed:
            return parsed.namespace, parsed.rest
        except SystemExit as exit:
            raise AssertionError(f"{prog} {' '.join(args)}: refused (exit {exit.code})") from None
    raise AssertionError(f"{prog} never parsed its command line")


def parse_dvc(args: list[str]) -> argparse.Namespace:
    from dvc.cli import DvcParserError, parse_args

    try:
        return parse_args(args)
    except (DvcParserError, SystemExit):
        raise AssertionError(f"dvc {' '.join(args)}: DVC refuses it") from None


def run_py() -> Any:
    return module_from_file(PROJECT_ROOT / "run.py", "run_py")


def check_run_py(args: list[str]) -> None:
    command, rest = args[0], args[1:]
    assert command in run_py().COMMANDS, f"python3 run.py {command}: no such command"
    if command in ("dvc", "repro"):
        parse_dvc(rest if command == "dvc" else ["repro", *rest])
    elif command == "gpu-check":
        stage_runs("commands.gpu_check", rest)
    elif command == "sync":
        pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
        extras = pyproject["project"]["optional-dependencies"]
        assert set(rest) <= set(extras), f"python3 run.py sync: no extra {set(rest) - set(extras)}"


def sweep_values(value: str) -> list[str]:
    """`key=a,b` as DVC's queued grid reads it: one value per comma outside brackets."""
    key, text = value.split("=", 1)
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [f"{key}={part}" for part in [*parts, text[start:]]]


def check_runs(runs: list[list[str]]) -> None:
    """Each run's params (params.yaml, then its overrides: a profile's, then the -S values) are valid."""
    for overrides in runs:
        validate_params(apply_overrides(read_params(), overrides), PARAMS_FILE, machine=False)


def dvc_runs(args: list[str], before: list[str] | None = None) -> list[list[str]]:
    """The params runs of a `dvc` command line: one for `exp run`, one per value of a queued grid."""
    namespace = parse_dvc(args)
    if args[:2] != ["exp", "run"]:
        return []
    sets, base = namespace.set_param or [], before or []
    if namespace.queue:
        return [[*base, one] for value in sets for one in sweep_values(value)]
    return [[*base, *sets]]


def stage_runs(module: str, args: list[str]) -> list[list[str]]:
    namespace, rest = parse_stage(module, args)
    profile = getattr(namespace, "profile", None)
    base = load_profile(profile).overrides() if profile else []
    if module == "commands.exp_run":  # the rest goes to `dvc exp run`
        return dvc_runs(["exp", "run", *rest], base)
    assert not rest, f"python -m {module}: unrecognized arguments {rest}"
    if module == "commands.runners" and namespace.command == "plan":
        return [[*base, *one] for one in parse_override_sets(namespace.overrides)]
    reference = [*base, *(getattr(namespace, "set_param", None) or [])]
    variants = [overrides for _, *overrides in getattr(namespace, "variant", None) or []]  # commands.ablate
    return [reference, *([*reference, *overrides] for overrides in variants)]


def command_runs(words: list[str]) -> list[list[str]]:
    """Parse a docs command line as its program would; return the params runs it asks for."""
    program, args = words[0], words[1:]
    if program in PYTHONS and args[:1] == ["run.py"]:
        check_run_py(args[1:])
        return dvc_runs(args[2:]) if args[1] == "dvc" else []
    if program in PYTHONS and args[:1] == ["-c"]:
        return []  # a Python one-liner, shown
    if program in PYTHONS and args[:1] == ["-m"]:
        assert args[1].split(".")[0] in ENTRY_POINTS, f"{args[1]}: not a command of this project"
        return stage_runs(args[1], args[2:])
    if program in PREDICT:
        return stage_runs("commands.predict", args)
    if program == "dvc":
        return dvc_runs(args)
    assert program in NOT_CHECKED, f"{program}: a program this test does not know (add it to NOT_CHECKED)"
    return []


def commands() -> list[Any]:
    return [
        pytest.param(words, id=f"{block.name}:{' '.join(words)[:60]}")
        for block in command_blocks()
        for words in block.commands()
    ]


@pytest.mark.parametrize("words", commands())
def test_every_docs_command_parses_and_sets_valid_params(
    words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    check_runs(command_runs(words))


def test_every_command_block_runs_in_the_tests_or_names_why_not() -> None:
    blocks = command_blocks()
    assert len(blocks) >= 20, "the docs' command blocks were not found"
    problems = []
    for block in blocks:
        if block.not_run is not None:
            if len(block.not_run) < 10:
                problems.append(f"{block.name}: `not run:` must say why")
            continue
        others = [words[0] for words in block.commands(block.runnable_text()) if words[0] not in RUNNABLE]
        if others:
            problems.append(
                f"{block.name}: {others} cannot run in the tests' repository; mark it `not run: <why>`"
            )
    assert not problems, "\n".join(problems)


def untagged_commands(block: Block) -> list[str]:
    programs = ("python", "dvc", "breakhis-predict", ".venv/", "git ")
    return [line for line in block.text.splitlines() if line.lstrip().startswith(programs)]


def test_no_command_hides_in_an_untagged_block() -> None:
    untagged = [block for block in all_blocks() if not block.is_commands]
    hidden = [f"{block.name}: {untagged_commands(block)}" for block in untagged if untagged_commands(block)]
    assert not hidden, f"tag these blocks ```bash: {hidden}"
