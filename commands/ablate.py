"""Command: paired ablations on fixed folds. Does a variant of the recipe beat the reference in
every seed?

    python -m commands.ablate --variant NAME KEY=VALUE [KEY=VALUE ...] [--variant ...]
                            --seeds S [S ...] [--profile NAME] [--label L] [--folds K]
                            [--queue [--jobs J]] [-S key=value ...]
    python -m commands.ablate --summarise --variant NAME KEY=VALUE ... --seeds S ... [--label L]

The reference is params.yaml, or the profile, with the -S overrides; each variant adds its own
overrides on top. For every seed, the reference and each variant are cross-validated
(commands.cross_validate, folds kept where their experiments exist: `--resume`) as the labels
`<label>` and `<label>-<variant>`, so a profile's existing cross-validation is the reference as it
stands. The same seed gives the same patient folds whatever the params: the comparison is paired
image by image. Then, per variant and model, the pooled out-of-fold ROC AUC minus the reference's
with a paired bootstrap interval over patient groups and the verdict, per seed and over the seeds,
whether the lever holds in every seed, and the Spearman correlation with the colour baseline
(breakhis.evaluation.cross_validation.ablation). Written to cv/<label>/ablation.md and .json, and
printed. `--summarise` trains nothing: it pairs the experiments that exist.
"""

from __future__ import annotations

import argparse
import sys

from breakhis.evaluation.cross_validation.ablation import Settings, ablation_markdown, compare_variant
from breakhis.evaluation.cross_validation.runs import CVRequest, by_label, cross_validate, resolve, summarise
from breakhis.evaluation.cross_validation.summary import CVSummary
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import check_label, experiment_refs, head_or_none
from breakhis.pipeline.files import write_json
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import CV_DIR
from breakhis.pipeline.profiles import load_profile
from breakhis.pipeline.stage import run_stage

REFERENCE = "reference"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("commands.ablate", __doc__)
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME KEY=VALUE",
        help="a name, then the param overrides that make the variant (repeatable: one per variant)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="the seeds: each one other folds")
    parser.add_argument(
        "--profile", metavar="NAME", help="the reference is this profile (profiles/NAME.yaml)"
    )
    parser.add_argument(
        "--label", help="the reference's label (default: the profile's NAME-v<version>, or ablate)"
    )
    parser.add_argument("--folds", type=int, help="number of folds (default: split.folds of params.yaml)")
    parser.add_argument(
        "-S", "--set-param", action="append", default=[], metavar="KEY=VALUE", help="for the reference too"
    )
    parser.add_argument("--queue", action="store_true", help="queue each cross-validation's folds and wait")
    parser.add_argument("--jobs", type=int, default=1, help="with --queue: folds run at once (default 1)")
    parser.add_argument(
        "--summarise", action="store_true", help="pair the experiments that exist; train nothing"
    )
    args = parser.parse_args(argv)
    names = [variant[0] for variant in args.variant]
    for name, *overrides in args.variant:
        check_label(name)
        if name == REFERENCE or names.count(name) > 1:
            raise ValueError(f"--variant {name}: every variant needs its own name (not '{REFERENCE}')")
        if not overrides or any("=" not in o for o in overrides):
            raise ValueError(f"--variant {name}: give its overrides as KEY=VALUE after the name")
    if args.label is None:
        args.label = "ablate"
        if args.profile is not None:
            profile = load_profile(args.profile)
            args.label = f"{profile.name}-v{profile.version}"
    check_label(args.label)
    return args


def cross_validation(args: argparse.Namespace, label: str, overrides: list[str], seed: int) -> CVSummary:
    """One seed of the reference (no `overrides`) or of a variant: run its missing folds and
    summarise them, or with --summarise only summarise the experiments that exist."""
    if args.summarise:
        targets = by_label(label, seed, experiment_refs())[seed]
        return summarise(label, resolve(targets, experiment_refs(), head_or_none()))
    return cross_validate(
        CVRequest(
            label=label,
            seed=seed,
            folds=args.folds,
            profile=args.profile,
            overrides=[*args.set_param, *overrides],
            queue=args.queue,
            jobs=args.jobs,
            resume=True,
        )
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    variants = {name: overrides for name, *overrides in args.variant}
    reference = {seed: cross_validation(args, args.label, [], seed) for seed in args.seeds}
    params = load_params()
    settings = Settings(params.evaluate.bootstrap_resamples, params.evaluate.confidence, params.seed)
    results = {}
    for name, overrides in variants.items():
        variant = {
            seed: cross_validation(args, f"{args.label}-{name}", overrides, seed) for seed in args.seeds
        }
        results[name] = compare_variant(reference, variant, settings)
    text = ablation_markdown(args.label, variants, results, settings.confidence)
    directory = CV_DIR / args.label
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ablation.md").write_text(text)
    write_json(
        directory / "ablation.json",
        {"reference": args.label, "seeds": args.seeds, "variants": variants, "results": results},
    )
    print(text)
    print(f"wrote {directory}/ablation.md and ablation.json", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
