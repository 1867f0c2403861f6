"""Command: patient-grouped cross-validation as DVC experiments, and its summary.

    python -m commands.cross_validate [--profile NAME] [--label L] [--folds K] [--seed N]
                                    [--queue [--jobs J]] [--resume | --force] [-S key=value ...]
    python -m commands.cross_validate --summarise [EXPERIMENT ...] [--label L] [--seed N]

Runs every fold of `split.strategy=kfold` (`split.fold=0..K-1`) as a DVC experiment named
`cv-<label>-s<seed>-f<fold>`, one after the other in a temporary copy of the repository
(`dvc exp run --temp`: the workspace is never touched), or queued and run by `dvc queue start`
(`--queue`), with a profile's params (profiles/<name>.yaml) and then the `-S` overrides applied;
then summarises them into cv/<label>/s<seed>/: summary.md (also printed),
summary.json, folds.csv and summary.png. `--summarise` summarises experiments that exist (by name
or revision, or all those of `--label`) without training anything.
"""

from __future__ import annotations

import argparse

from breakhis.evaluation.cross_validation.runs import (
    DEFAULT_LABEL,
    CVRequest,
    cross_validate,
    resolve,
    summarise,
    summarise_label,
)
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import check_label, experiment_refs, head_or_none, parse_experiment_name
from breakhis.pipeline.stage import run_stage


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("commands.cross_validate", __doc__)
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="apply profiles/NAME.yaml's params to every fold, before the -S overrides; the label "
        "defaults to NAME-v<version>",
    )
    parser.add_argument(
        "--label",
        help=f"names the experiments cv-<label>-s<seed>-f<fold> and the folder cv/<label>/s<seed>/ "
        f"(default: {DEFAULT_LABEL}, or the profile's)",
    )
    parser.add_argument("--folds", type=int, help="number of folds (default: split.folds of params.yaml)")
    parser.add_argument(
        "--seed",
        type=int,
        help="sets `seed`, which reshuffles the folds: repeated cross-validation (default: params.yaml's); "
        "with --summarise --label: only that seed's experiments",
    )
    parser.add_argument(
        "-S",
        "--set-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other param override, passed to every fold's `dvc exp run` (repeatable)",
    )
    parser.add_argument("--queue", action="store_true", help="queue the folds, `dvc queue start` them, wait")
    parser.add_argument("--jobs", type=int, default=1, help="with --queue: folds run at once (default 1)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the folds whose experiments exist on this commit, run the others",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="run every fold again (removes its experiment on this commit first)",
    )
    parser.add_argument(
        "--summarise",
        nargs="*",
        metavar="EXPERIMENT",
        help="only summarise: these experiments (names or git revisions), or with none given every "
        "experiment of --label (each seed into its own folder)",
    )
    return parser.parse_args(argv)


def request(args: argparse.Namespace) -> CVRequest:
    return CVRequest(
        label=args.label,
        seed=args.seed,
        folds=args.folds,
        profile=args.profile,
        overrides=args.set_param,
        queue=args.queue,
        jobs=args.jobs,
        resume=args.resume,
        force=args.force,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.label is not None:
        check_label(args.label)
    if args.summarise is None:
        cross_validate(request(args))
        return
    if args.set_param or args.queue or args.force or args.resume or args.folds or args.profile:
        raise ValueError(
            "--summarise trains nothing: --profile, -S, --folds, --queue, --resume and --force apply to "
            "running folds"
        )
    refs = experiment_refs()
    head = head_or_none()
    if args.summarise:
        if args.seed is not None:
            raise ValueError("--seed picks the experiments of a --label; name experiments or use --label")
        parsed = [parse_experiment_name(name) for name in args.summarise]
        labels = {p[0] for p in parsed if p}
        named = args.label or (labels.pop() if len(labels) == 1 and all(parsed) else None)
        if named is None:
            raise ValueError(
                "name the summary with --label (the experiments are not all cv-<label>-... of one label)"
            )
        summarise(named, resolve(args.summarise, refs, head))
        return
    summarise_label(args.label or DEFAULT_LABEL, args.seed)


if __name__ == "__main__":
    run_stage(main)
