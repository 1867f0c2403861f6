"""Command: cross-validation folds and `-S` sweeps fanned out to CI runners, one experiment each.

    python -m commands.runners plan --label L [--folds K] [--seeds N ...] [--overrides TEXT]
    python -m commands.runners run ENTRY [--push REMOTE]
    python -m commands.runners summarise MATRIX --out FILE [--pull REMOTE]

`plan` validates every override set against the params schema and prints the job matrix (JSON;
also written to $GITHUB_OUTPUT as `matrix` and `count` inside GitHub Actions). `run` runs one
matrix entry (its JSON) as a DVC experiment in the workspace and `dvc exp push`es it: its git
ref to the git remote, its models and data to the default DVC remote. `summarise` pulls the
plan's experiments (git refs only: the summary reads metrics and predictions from git), then
summarises each cross-validation as `commands.cross_validate --summarise` does (cv/<label>/s<seed>/)
and each sweep as a table, into one markdown report. .github/workflows/cross-validation.yml runs
the three on GitHub Actions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from breakhis.evaluation.cross_validation.documents import markdown
from breakhis.evaluation.cross_validation.runs import load, resolve, summarise
from breakhis.evaluation.metrics import BALANCED_ACCURACY, ROC_AUC
from breakhis.evaluation.tables import estimate, table
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import ExperimentRef, dvc, experiment_refs, head_or_none
from breakhis.pipeline.files import check_output, write_text_atomically
from breakhis.pipeline.matrix import Entry, as_matrix, from_matrix, parse_override_sets, plan
from breakhis.pipeline.paths import PARAMS_FILE
from breakhis.pipeline.stage import run_stage

SWEEP_METRICS = (ROC_AUC, BALANCED_ACCURACY)


def plan_command(args: argparse.Namespace) -> None:
    entries = plan(
        args.label,
        PARAMS_FILE.read_text(),
        folds=args.folds,
        seeds=args.seeds,
        override_sets=parse_override_sets(args.overrides),
    )
    matrix = json.dumps(as_matrix(entries), separators=(",", ":"))
    for entry in entries:
        print(f"{entry.name}: -S {' -S '.join(entry.overrides)}", file=sys.stderr)
    if "GITHUB_OUTPUT" in os.environ:
        with open(os.environ["GITHUB_OUTPUT"], "a") as output:
            output.write(f"matrix={matrix}\ncount={len(entries)}\n")
    print(matrix)


def parse_entry(text: str) -> Entry:
    try:
        item = json.loads(text)
        return Entry(**{key: item[key] for key in ("name", "label", "seed", "fold", "overrides")})
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"ENTRY: not a matrix entry of `plan` ({exc}): {text[:200]}") from None


def run_command(args: argparse.Namespace) -> None:
    entry = parse_entry(args.entry)
    overrides = [word for override in entry.overrides for word in ("-S", override)]
    print(f"{entry.name}: dvc exp run -n {entry.name} {' '.join(overrides)}", file=sys.stderr, flush=True)
    if dvc("exp", "run", "-n", entry.name, *overrides).returncode != 0:
        raise RuntimeError(f"{entry.name}: dvc exp run failed (its output is above)")
    if args.push and dvc("exp", "push", args.push, entry.name).returncode != 0:
        raise RuntimeError(f"{entry.name}: dvc exp push {args.push} failed (git or DVC remote credentials?)")


def sweep_table(
    entries: list[Entry], present: set[str], refs: list[ExperimentRef], head: str | None
) -> list[str]:
    """Headline test metrics of each sweep experiment, with their bootstrap intervals."""
    rows = []
    for entry in entries:
        if entry.name not in present:
            continue
        result = load(resolve([entry.name], refs, head)[0])
        overrides = " ".join(o for o in entry.overrides if not o.startswith("seed="))
        for model in ("ensemble", "custom", "vgg19", "resnet50"):
            scores: dict[str, Any] = result.metrics.get(model, {})
            cells = []
            for metric in SWEEP_METRICS:
                ci = scores.get("ci", {}).get(metric.name)
                cells.append(
                    estimate(metric.value_in(scores), ci if isinstance(ci, dict) else None, interval_digits=3)
                )
            rows.append([f"`{entry.name}`", f"`{overrides or '(none)'}`", model, *cells])
    header = ["Experiment", "Overrides", "Model", *(metric.title for metric in SWEEP_METRICS)]
    return table(header, rows, "lll" + "l" * len(SWEEP_METRICS))


def summarise_command(args: argparse.Namespace) -> None:
    out = check_output(Path(args.out), "--out", "summary.md")  # before the experiments are pulled
    try:
        entries = from_matrix(json.loads(args.matrix))
    except json.JSONDecodeError as exc:
        raise ValueError(f"MATRIX: not JSON ({exc})") from None
    if args.pull:
        for entry in entries:  # one at a time: a failed runner's missing experiment is reported below
            dvc("exp", "pull", "--no-cache", args.pull, entry.name)
    refs, head = experiment_refs(), head_or_none()
    present = {ref.name for ref in refs} & {entry.name for entry in entries}
    missing = [entry.name for entry in entries if entry.name not in present]
    lines = [f"# Runner results: {len(present)} of {len(entries)} experiments", ""]
    if missing:
        lines += [f"Missing (the runner failed or did not push): {', '.join(f'`{n}`' for n in missing)}", ""]
    cross_validations: dict[tuple[str, int], list[str]] = {}
    for entry in entries:
        if entry.fold is not None and entry.name in present:
            cross_validations.setdefault((entry.label, entry.seed), []).append(entry.name)
    for (label, _), names in cross_validations.items():
        lines += [markdown(summarise(label, resolve(names, refs, head))), ""]
    sweeps = [entry for entry in entries if entry.fold is None]
    if sweeps:
        lines += [
            "## Sweep (test split of params.yaml's split)",
            "",
            *sweep_table(sweeps, present, refs, head),
            "",
        ]
    write_text_atomically(out, "\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    if not present:
        raise ValueError("no experiment of the plan could be pulled: nothing to summarise")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("commands.runners", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    planning = commands.add_parser("plan", help="print the job matrix")
    planning.add_argument("--label", required=True, help="names the experiments and summaries")
    planning.add_argument(
        "--folds", type=int, default=5, help="folds of each cross-validation; 0: a sweep (default 5)"
    )
    planning.add_argument(
        "--seeds", type=int, nargs="*", help="one cross-validation per seed (default: `seed`)"
    )
    planning.add_argument(
        "--overrides",
        default="",
        help="one override set per line, e.g. 'train.epochs=20 train.learning_rate=0.0003' (default: none)",
    )
    running = commands.add_parser("run", help="run one matrix entry as a DVC experiment")
    running.add_argument("entry", help="the entry's JSON (`${{ toJSON(matrix) }}` in a workflow)")
    running.add_argument("--push", metavar="REMOTE", help="then `dvc exp push REMOTE` the experiment")
    summarising = commands.add_parser("summarise", help="pull and summarise a plan's experiments")
    summarising.add_argument("matrix", help="the plan's matrix JSON")
    summarising.add_argument("--pull", metavar="REMOTE", help="`dvc exp pull REMOTE` each experiment first")
    summarising.add_argument("--out", required=True, help="write the markdown report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    {"plan": plan_command, "run": run_command, "summarise": summarise_command}[args.command](args)


if __name__ == "__main__":
    run_stage(main)
