"""Command: one DVC experiment with a profile's params, in one step.

    python -m stages.exp_run --profile NAME [-S key=value ...] [any other `dvc exp run` option]

Runs `dvc exp run -S <every key of profiles/NAME.yaml> [your -S ...] [options]`: the profile's
values first, yours after them (they win). Options such as `-n NAME`, `--queue` or `--temp` go to
`dvc exp run` unchanged. The profile is checked against the params schema before anything runs.
"""

from __future__ import annotations

import shlex
import sys

from stages.pipeline.cli import command_parser
from stages.pipeline.experiments import dvc
from stages.pipeline.profiles import available, load_profile
from stages.pipeline.stage import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("stages.exp_run", __doc__)
    parser.add_argument("--profile", required=True, metavar="NAME", help=f"one of: {', '.join(available())}")
    parser.add_argument(
        "--print", action="store_true", help="print the `dvc exp run` command instead of running it"
    )
    args, rest = parser.parse_known_args(argv)
    profile = load_profile(args.profile)
    command = ["exp", "run", *(a for value in profile.overrides() for a in ("-S", value)), *rest]
    if args.print:
        print(shlex.join(["dvc", *command]))
        return
    print(f"profile {profile.name} v{profile.version}: {profile.description}", file=sys.stderr, flush=True)
    if dvc(*command).returncode != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    run_stage(main)
