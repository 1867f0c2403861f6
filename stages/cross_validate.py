"""Command: patient-grouped cross-validation as DVC experiments, and its summary.

    python -m stages.cross_validate [--profile NAME] [--label L] [--folds K] [--seed N]
                                    [--queue [--jobs J]] [--resume | --force] [-S key=value ...]
    python -m stages.cross_validate --summarise [EXPERIMENT ...] [--label L] [--seed N]

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
import json
import sys
import time
from typing import Any

from stages.evaluation.cross_validation.documents import (
    recommendation_lines,
    recommended_yaml,
    repeated_markdown,
    write_summary,
)
from stages.evaluation.cross_validation.ensemble import SeedsChoice, aligned_probabilities, choose_over_seeds
from stages.evaluation.cross_validation.folds import FoldResult, scored_models
from stages.evaluation.cross_validation.summary import CVSummary, summarise_folds
from stages.pipeline.cli import command_parser
from stages.pipeline.experiments import (
    ExperimentRef,
    Target,
    UnknownRevisionError,
    check_label,
    code_identity,
    dvc,
    experiment_name,
    experiment_refs,
    file_at,
    fold_overrides,
    git,
    head_commit,
    head_or_none,
    parse_experiment_name,
    predictions_at,
    summary_dir,
)
from stages.pipeline.experiments import resolve as resolve_targets
from stages.pipeline.params import MODEL_NAMES, load_params
from stages.pipeline.paths import CV_DIR, EVALUATE_METRICS, PARAMS_FILE, epoch_predictions_file
from stages.pipeline.profiles import available, load_profile
from stages.pipeline.stage import run_stage
from stages.pipeline.yaml_text import parse_yaml

DEFAULT_LABEL = "default"
RESERVED = {"split.strategy": "kfold", "split.fold": "the fold", "split.folds": "--folds", "seed": "--seed"}
QUEUE_POLL_SECONDS = 15


# ---------------------------------------------------------------------------------------------
# finding and loading experiments


def resolve(names: list[str], refs: list[ExperimentRef], head: str | None) -> list[Target]:
    """Experiment names or git revisions; an unknown one is named with the CV experiments here."""
    try:
        return resolve_targets(names, refs, head)
    except UnknownRevisionError as exc:
        known = sorted({r.name for r in refs if parse_experiment_name(r.name)})
        hint = f" (cross-validation experiments here: {', '.join(known)})" if known else ""
        raise ValueError(f"{exc}{hint}") from None


def by_label(label: str, seed: int | None, refs: list[ExperimentRef]) -> dict[int, list[str]]:
    """Names of the label's experiments, by seed."""
    seeds: dict[int, set[str]] = {}
    for ref in refs:
        parsed = parse_experiment_name(ref.name)
        if parsed and parsed[0] == label and (seed is None or parsed[1] == seed):
            seeds.setdefault(parsed[1], set()).add(ref.name)
    if not seeds:
        labels = sorted({p[0] for r in refs if (p := parse_experiment_name(r.name))})
        wanted = experiment_name(label, "<seed>" if seed is None else seed, "<fold>")
        hint = f"; labels here: {', '.join(labels)}" if labels else ""
        raise ValueError(f"no experiments named {wanted}{hint}")
    return {
        s: sorted(names, key=lambda n: parse_experiment_name(n) or (label, s, 0))
        for s, names in seeds.items()
    }


def load(target: Target) -> FoldResult:
    """An experiment's params, evaluate metrics and test predictions, read from git at its commit."""
    params_text = file_at(target.rev, PARAMS_FILE)
    metrics_text = file_at(target.rev, EVALUATE_METRICS)
    if params_text is None:
        raise ValueError(f"{target.name}: no {PARAMS_FILE} at {target.rev[:7]}")
    if metrics_text is None:
        raise ValueError(
            f"{target.name}: no {EVALUATE_METRICS} at {target.rev[:7]} (did its evaluate stage run?)"
        )
    metrics: dict[str, Any] = json.loads(metrics_text)
    return FoldResult(
        name=target.name,
        rev=target.rev,
        params=parse_yaml(params_text, f"{PARAMS_FILE} at {target.rev[:7]}") or {},
        metrics=metrics,
        predictions=predictions_at(target.rev, scored_models(metrics)),
        baseline=target.baseline,
        code=code_identity(target.rev),
        epochs=predictions_at(target.rev, MODEL_NAMES, epoch_predictions_file),
    )


def summarise(label: str, targets: list[Target]) -> CVSummary:
    """Summarise the experiments into cv/<label>/s<seed>/, print the summary and return it."""
    summary = summarise_folds([load(target) for target in targets], label)
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    directory = summary_dir(label, summary.settings.seed)
    text = write_summary(summary, directory)
    print(text)
    print(f"wrote {directory}/summary.md, summary.json, folds.csv, summary.png", file=sys.stderr)
    return summary


# ---------------------------------------------------------------------------------------------
# running the folds


def check_overrides(overrides: list[str]) -> None:
    for override in overrides:
        key = override.split("=", 1)[0].split(":")[-1].strip()
        if "=" not in override:
            raise ValueError(f"-S {override}: expected key=value")
        if key in RESERVED:
            raise ValueError(f"-S {override}: {key} is set by this command (use {RESERVED[key]})")


def queue_states() -> dict[str, list[str]]:
    """Status of every queue task by experiment name, from `dvc queue status`."""
    result = dvc("queue", "status", capture=True)
    states: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 3 and words[-1] in ("Queued", "Running", "Success", "Failed", "Unknown"):
            states.setdefault(words[1], []).append(words[-1])
    return states


def wait_for_queue(names: list[str]) -> None:
    shown: dict[str, str] = {}
    try:
        while True:
            states = queue_states()
            pending = []
            for name in names:
                now = states.get(name, ["gone"])
                state = next((s for s in ("Running", "Queued") if s in now), now[-1])
                if shown.get(name) != state:
                    print(f"{name}: {state}", file=sys.stderr, flush=True)
                    shown[name] = state
                if state in ("Running", "Queued"):
                    pending.append(name)
            if not pending:
                return
            time.sleep(QUEUE_POLL_SECONDS)
    except KeyboardInterrupt:
        print(
            "\nstopped waiting; the queued folds keep running (`dvc queue status`). Summarise them later "
            "with `python -m stages.cross_validate --summarise --label <label>`.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def run_folds(args: argparse.Namespace) -> tuple[list[str], str]:
    """Run (or queue and wait for) every fold; return the experiment names and the commit they ran
    on (HEAD when they started: a commit made while queued folds run moves HEAD)."""
    params = load_params()
    folds = args.folds or params.split.folds
    seed = params.seed if args.seed is None else args.seed
    if folds < 2:
        raise ValueError(f"--folds {folds}: a cross-validation needs at least 2 folds")
    head = head_commit()
    names = [experiment_name(args.label, seed, fold) for fold in range(folds)]
    existing = sorted({r.name for r in experiment_refs() if r.baseline == head} & set(names))
    if existing and not (args.force or args.resume):
        raise ValueError(
            f"experiment(s) {', '.join(existing)} exist on this commit already: summarise them with "
            f"`--summarise --label {args.label} --seed {seed}`, run only the missing folds with --resume, "
            "or run them all again with --force"
        )
    if existing and args.force and dvc("exp", "remove", *existing).returncode != 0:
        raise ValueError(f"could not remove the experiment(s) {', '.join(existing)}")
    folds_to_run = [fold for fold in range(folds) if args.force or names[fold] not in existing]
    for fold in sorted(set(range(folds)) - set(folds_to_run)):
        print(f"fold {fold} of {folds}: {names[fold]} exists, kept (--resume)", file=sys.stderr)
    untracked = [
        path
        for path in git("ls-files", "--others", "--exclude-standard").stdout.splitlines()
        if not path.startswith(f"{CV_DIR}/")
    ]
    if untracked:
        listed = ", ".join(untracked[:5]) + (" ..." if len(untracked) > 5 else "")
        print(
            f"warning: untracked files are not copied into the folds' temporary copies of the "
            f"repository: {listed} (git add what the pipeline needs)",
            file=sys.stderr,
        )
    failed = []
    for fold in folds_to_run:
        name = names[fold]
        mode = "--queue" if args.queue else "--temp"
        print(f"fold {fold} of {folds}: {name}", file=sys.stderr, flush=True)
        overrides = [a for o in fold_overrides(folds, seed, fold, args.set_param) for a in ("-S", o)]
        if dvc("exp", "run", mode, "-n", name, *overrides).returncode != 0:
            failed.append(name)
    if args.queue:
        if failed:
            raise ValueError(f"could not queue {', '.join(failed)}")
        if dvc("queue", "start", "--jobs", str(args.jobs)).returncode != 0:
            raise ValueError("dvc queue start failed")
        wait_for_queue([names[fold] for fold in folds_to_run])
        print("a failed fold's output: `dvc queue logs <experiment name>`", file=sys.stderr)
    return names, head


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("stages.cross_validate", __doc__)
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


def cross_validate(args: argparse.Namespace) -> CVSummary:
    """Run (or resume) every fold of `args` (as `parse_args` gives them) and summarise them."""
    if args.force and args.resume:
        raise ValueError("--force runs every fold again, --resume only the missing ones: pick one")
    if args.profile is not None:
        profile = load_profile(args.profile)
        check_overrides(profile.overrides())
        args.set_param = [*profile.overrides(), *args.set_param]
        args.label = args.label or check_label(f"{profile.name}-v{profile.version}")
    args.label = args.label or DEFAULT_LABEL
    check_overrides(args.set_param)
    names, commit = run_folds(args)
    refs = experiment_refs()
    done = [name for name in names if any(r.name == name and r.baseline == commit for r in refs)]
    if not done:
        raise ValueError("no fold finished: nothing to summarise (see DVC's output above)")
    summary = summarise(args.label, resolve(done, refs, commit))
    failed = [name for name in names if name not in done]
    if failed:
        raise ValueError(f"fold(s) failed: {', '.join(failed)}; the summary above leaves them out")
    return summary


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.label is not None:
        check_label(args.label)
    if args.summarise is None:
        cross_validate(args)
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
    label = args.label or DEFAULT_LABEL
    summaries = [
        summarise(label, resolve(names, refs, head)) for names in by_label(label, args.seed, refs).values()
    ]
    if len(summaries) > 1:
        summaries = sorted(summaries, key=lambda summary: summary.settings.seed)
        text = repeated_markdown(summaries)
        choice = recommend(summaries)
        if choice is not None:
            text += "\n" + "\n".join(recommendation_lines(choice))
            (CV_DIR / label / "recommended.yaml").write_text(recommended_yaml(choice))
            check_profile(label, choice)
        (CV_DIR / label / "repeated.md").write_text(text)
        print(text)
        print(f"wrote {CV_DIR / label}/repeated.md", file=sys.stderr)


def recommend(summaries: list[CVSummary]) -> SeedsChoice | None:
    """What repeated cross-validation chose for a pipeline run: the members and threshold
    (`choose_over_seeds`), when every seed scored more than one model on the same images."""
    models = [m for m in MODEL_NAMES if all(m in summary.predictions for summary in summaries)]
    if len(models) < 2:
        return None
    seeds = {s.settings.seed: aligned_probabilities(s.predictions, models) for s in summaries}
    images = {frozenset(table["filename"]) for table in seeds.values()}
    if len(images) > 1:
        print("warning: the seeds tested different images: no ensemble recommended", file=sys.stderr)
        return None
    return choose_over_seeds(seeds, models)


def check_profile(label: str, choice: SeedsChoice) -> None:
    """CV decides, the pipeline obeys: when the label is a profile's (`<name>-v<version>`, as
    `--profile` names it), say whether that profile version ships what was chosen."""
    name, _, version = label.rpartition("-v")
    if not version.isdigit() or name not in available():
        return
    profile = load_profile(name)
    ships = (
        profile.params.get("evaluate.members", list(MODEL_NAMES)),
        profile.params.get("evaluate.threshold"),
    )
    wanted = (list(choice.members), round(choice.threshold, 3))
    if profile.version != int(version):
        print(
            f"note: {label} is not the current version of profiles/{name}.yaml ({profile.version})",
            file=sys.stderr,
        )
    elif ships != wanted:
        print(
            f"warning: profiles/{name}.yaml version {profile.version} ships evaluate.members {ships[0]} "
            f"and evaluate.threshold {ships[1]}; its repeated cross-validation chose {wanted[0]} and "
            f"{wanted[1]}: "
            f"a pipeline run of this profile is not what cross-validation measured best. Put "
            f"{CV_DIR / label}/recommended.yaml into a new version of the profile",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage(main)
