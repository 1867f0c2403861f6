"""Command: retrain one configuration with several training seeds, and report the spread.

    python -m commands.seed_spread [--label L] [--seeds 1 2 3] [--resume] [-S key=value ...]
    python -m commands.seed_spread --summarise [--label L]

Runs `dvc exp run --temp -n seeds-<label>-t<seed> -S train.seed=<seed>` for every seed (the data,
split and test images stay the same: only training randomness changes). The workspace is never
touched, but each run copies it when it starts: do not edit code meanwhile (the summary warns
when the runs' code differs). Then writes seeds/<label>/summary.md (also printed) and
summary.json: every headline metric per seed with its mean, standard deviation and range, and how
often the paired comparison calls a seed-only change better or worse. `--summarise` only
summarises the label's experiments.
"""

from __future__ import annotations

import json
import sys

from breakhis.evaluation.seed_spread import (
    SeedRun,
    check_runs,
    code_warnings,
    false_alarms,
    markdown,
    spread_table,
)
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import (
    check_label,
    code_identity,
    dvc,
    experiment_refs,
    file_at,
    head_commit,
    params_at,
    predictions_at,
    resolve,
)
from breakhis.pipeline.files import write_json
from breakhis.pipeline.param_types import EVALUATED
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import EVALUATE_METRICS, PARAMS_FILE, SEEDS_DIR
from breakhis.pipeline.stage import run_stage

PREFIX = "seeds-"


def experiment_name(label: str, seed: int) -> str:
    return f"{PREFIX}{label}-t{seed}"


def load_run(name: str, rev: str) -> SeedRun:
    params, metrics_text = params_at(rev), file_at(rev, EVALUATE_METRICS)
    if params is None or metrics_text is None:
        raise ValueError(f"{name}: no {PARAMS_FILE} or {EVALUATE_METRICS} at {rev[:7]} (did evaluate run?)")
    seed = (params.get("train") or {}).get("seed")
    if not isinstance(seed, int):
        raise ValueError(f"{name}: train.seed is not set in its {PARAMS_FILE}")
    predictions = predictions_at(rev, EVALUATED)
    return SeedRun(name, seed, params, json.loads(metrics_text), predictions, code_identity(rev))


def label_runs(label: str) -> list[SeedRun]:
    """The newest experiment of each seed of the label (those run on HEAD first)."""
    refs = experiment_refs()
    stem = f"{PREFIX}{label}-t"
    names = sorted({r.name for r in refs if r.name.startswith(stem) and r.name[len(stem) :].isdigit()})
    if not names:
        raise ValueError(f"no experiments named {stem}<seed> here")
    runs = [load_run(target.name, target.rev) for target in resolve(names, refs, head_commit())]
    return sorted(runs, key=lambda run: run.train_seed)


def run_seeds(label: str, seeds: list[int], overrides: list[str], resume: bool) -> None:
    head = head_commit()
    existing = {r.name for r in experiment_refs() if r.baseline == head}
    for seed in seeds:
        name = experiment_name(label, seed)
        if name in existing:
            if resume:
                print(f"{name} exists on this commit, kept (--resume)", file=sys.stderr)
                continue
            raise ValueError(f"{name} exists on this commit: summarise with --summarise, or use --resume")
        common = [arg for override in overrides for arg in ("-S", override)]
        if dvc("exp", "run", "--temp", "-n", name, *common, "-S", f"train.seed={seed}").returncode != 0:
            raise ValueError(f"{name} failed (see DVC's output above)")


def summarise(label: str) -> None:
    runs = label_runs(label)
    check_runs(runs)
    for warning in code_warnings(runs):
        print(f"warning: {warning}", file=sys.stderr)
    params = load_params()
    table = spread_table(runs)
    alarms = false_alarms(
        runs,
        resamples=params.evaluate.bootstrap_resamples,
        confidence=params.evaluate.confidence,
        seed=params.seed,
    )
    text = markdown(label, runs, table, alarms)
    directory = SEEDS_DIR / label
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.md").write_text(text)
    write_json(
        directory / "summary.json",
        {
            "experiments": {run.name: run.train_seed for run in runs},
            "spread": table.to_dict("records"),
            "paired_verdicts": alarms.to_dict("records"),
        },
    )
    print(text)
    print(f"wrote {directory}/summary.md, summary.json", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("commands.seed_spread", __doc__)
    parser.add_argument("--label", default="default", help="names the experiments and seeds/<label>/")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds (default: 1 2 3)"
    )
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true", help="keep the seeds whose experiments exist")
    parser.add_argument("--summarise", action="store_true", help="only summarise the label's experiments")
    args = parser.parse_args(argv)
    check_label(args.label)
    if any(o.split("=", 1)[0].strip() == "train.seed" for o in args.set_param):
        raise ValueError("-S train.seed: set by this command (use --seeds)")
    if len(set(args.seeds)) < 2:
        raise ValueError(f"--seeds {' '.join(map(str, args.seeds))}: give at least 2 different seeds")
    if not args.summarise:
        run_seeds(args.label, args.seeds, args.set_param, args.resume)
    summarise(args.label)


if __name__ == "__main__":
    run_stage(main)
