"""Command: is the difference between two runs real? Paired on the test patients they share.

    python -m commands.compare BASE [NEW] [--json FILE]

BASE and NEW are DVC experiment names or git revisions (`main`, `HEAD~1`, a commit); NEW defaults to
the workspace (the results of the last `dvc repro`). For every model, each headline metric of both
runs on the same test images, the difference with a paired bootstrap interval over the shared
test patient groups, and a verdict: better, worse or within noise; runs that tested other images
are not comparable. Bootstrap resamples, confidence and seed come from params.yaml's `evaluate`
and `seed`. See breakhis.evaluation.comparison.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from breakhis.evaluation.comparison import comparable_groups, compare_runs, comparison_markdown
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import experiment_refs, head_or_none, predictions_at, resolve
from breakhis.pipeline.files import check_output, write_json
from breakhis.pipeline.param_types import EVALUATED
from breakhis.pipeline.params import Params
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import PARAMS_FILE, predictions_file
from breakhis.pipeline.stage import run_stage

WORKSPACE = "workspace"


def load_run(name: str) -> dict[str, pd.DataFrame]:
    """A run's predictions by experiment name, revision, or `workspace`; an error when it has none."""
    rev = None if name == WORKSPACE else resolve([name], experiment_refs(), head_or_none())[0].rev
    found = predictions_at(rev, EVALUATED)
    if not found:
        where = "in the workspace (run `dvc repro`)" if rev is None else f"at {name} ({rev[:7]})"
        raise ValueError(f"no test predictions ({predictions_file('<model>')}) {where}")
    return found


def compare(base: str, new: str, params: Params) -> dict[str, dict[str, Any]]:
    return compare_runs(
        load_run(base),
        load_run(new),
        resamples=params.evaluate.bootstrap_resamples,
        confidence=params.evaluate.confidence,
        seed=params.seed,
    )


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("commands.compare", __doc__)
    parser.add_argument("base", help="experiment name or git revision to compare against")
    parser.add_argument(
        "new", nargs="?", default=WORKSPACE, help=f"experiment or revision (default: {WORKSPACE})"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the comparison as JSON here")
    args = parser.parse_args(argv)
    json_out = check_output(args.json, "--json", "comparison.json") if args.json else None  # before the work
    params = load_params() if PARAMS_FILE.exists() else Params()
    results = compare(args.base, args.new, params)
    groups = comparable_groups(results)
    print("\n".join(comparison_markdown(results, args.base, args.new, params.evaluate.confidence)))
    if groups is not None:
        print(f"\nIntervals resample the {groups} test patient groups both runs share.")
    if json_out:
        write_json(json_out, results)
    verdicts = [m["verdict"] for r in results.values() for m in r.get("metrics", {}).values()]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in sorted(set(verdicts)))
    print(f"verdicts: {counts or 'nothing comparable'}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
