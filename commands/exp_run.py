"""Command: one DVC experiment with a profile's params, in one step.

    python -m commands.exp_run --profile NAME [-S key=value ...] [any other `dvc exp run` option]

Runs `dvc exp run -S <every key of profiles/NAME.yaml> [your -S ...] [options]`: the profile's
values first, yours after them (they win). Options such as `-n NAME`, `--queue` or `--temp` go to
`dvc exp run` unchanged. The experiment's params (params.yaml, the profile, then your `-S` values)
are checked against the params schema before anything runs, `--print` included.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import dvc
from breakhis.pipeline.matrix import apply_overrides
from breakhis.pipeline.params_file import read_params, validate_params
from breakhis.pipeline.paths import PARAMS_FILE
from breakhis.pipeline.profiles import Profile, available, load_profile
from breakhis.pipeline.stage import run_stage


def check_experiment(profile: Profile, options: list[str]) -> None:
    """Validate the params the experiment would run with: params.yaml, the profile's values, then
    the `-S` / `--set-param` values among `options` (the machine is checked where it runs)."""
    sets = argparse.ArgumentParser(add_help=False)
    sets.add_argument("-S", "--set-param", dest="sets", action="append", default=[])
    user = sets.parse_known_args(options)[0].sets
    source = Path(shlex.join([str(PARAMS_FILE), "--profile", profile.name, *(f"-S{v}" for v in user)]))
    merged = apply_overrides(read_params(), [*profile.overrides(), *user])
    validate_params(merged, source, machine=False)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("commands.exp_run", __doc__)
    parser.add_argument("--profile", required=True, metavar="NAME", help=f"one of: {', '.join(available())}")
    parser.add_argument(
        "--print", action="store_true", help="print the `dvc exp run` command instead of running it"
    )
    args, rest = parser.parse_known_args(argv)
    profile = load_profile(args.profile)
    check_experiment(profile, rest)
    command = ["exp", "run", *(a for value in profile.overrides() for a in ("-S", value)), *rest]
    if args.print:
        print(shlex.join(["dvc", *command]))
        return
    print(f"profile {profile.name} v{profile.version}: {profile.description}", file=sys.stderr, flush=True)
    if dvc(*command).returncode != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    run_stage(main)
