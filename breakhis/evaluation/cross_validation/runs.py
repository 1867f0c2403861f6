"""Cross-validation's folds as DVC experiments: run (or queue) them, find and load them from git,
summarise them into cv/<label>/s<seed>/, and say what repeated cross-validation chose for a pipeline
run. The commands `commands.cross_validate`, `commands.ablate` and `commands.runners` are thin
around it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from breakhis.evaluation.cross_validation.documents import (
    recommendation_lines,
    recommended_yaml,
    repeated_markdown,
    write_summary,
)
from breakhis.evaluation.cross_validation.ensemble import (
    SeedsChoice,
    aligned_probabilities,
    choose_over_seeds,
)
from breakhis.evaluation.cross_validation.folds import FoldResult, scored_models
from breakhis.evaluation.cross_validation.summary import CVSummary, summarise_folds
from breakhis.pipeline.experiments import (
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
    params_at,
    parse_experiment_name,
    predictions_at,
    summary_dir,
)
from breakhis.pipeline.experiments import resolve as resolve_targets
from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import CV_DIR, EVALUATE_METRICS, PARAMS_FILE, epoch_predictions_file
from breakhis.pipeline.profiles import available, load_profile
from breakhis.pipeline.stage import listed

DEFAULT_LABEL = "default"
RESERVED = {"split.strategy": "kfold", "split.fold": "the fold", "split.folds": "--folds", "seed": "--seed"}
QUEUE_POLL_SECONDS = 15


@dataclass(frozen=True)
class CVRequest:
    """One seed of a cross-validation to run: its label (default: the profile's `NAME-vN`, else
    `default`), the seed and the number of folds (default: params.yaml's), a profile and the `-S`
    overrides applied to every fold after it, and how: one after another or queued (`jobs` at
    once), keeping existing folds (`resume`) or running them again (`force`)."""

    label: str | None = None
    seed: int | None = None
    folds: int | None = None
    profile: str | None = None
    overrides: list[str] = field(default_factory=list)
    queue: bool = False
    jobs: int = 1
    resume: bool = False
    force: bool = False


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
    params = params_at(target.rev)
    metrics_text = file_at(target.rev, EVALUATE_METRICS)
    if params is None:
        raise ValueError(f"{target.name}: no {PARAMS_FILE} at {target.rev[:7]}")
    if metrics_text is None:
        raise ValueError(
            f"{target.name}: no {EVALUATE_METRICS} at {target.rev[:7]} (did its evaluate stage run?)"
        )
    metrics: dict[str, Any] = json.loads(metrics_text)
    return FoldResult(
        name=target.name,
        rev=target.rev,
        params=params,
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
            "with `python -m commands.cross_validate --summarise --label <label>`.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def run_folds(args: CVRequest, label: str) -> tuple[list[str], str]:
    """Run (or queue and wait for) every fold of the label; return the experiment names and the
    commit they ran on (HEAD when they started: a commit made while queued folds run moves HEAD)."""
    params = load_params()
    folds = args.folds or params.split.folds
    seed = params.seed if args.seed is None else args.seed
    if folds < 2:
        raise ValueError(f"--folds {folds}: a cross-validation needs at least 2 folds")
    head = head_commit()
    names = [experiment_name(label, seed, fold) for fold in range(folds)]
    existing = sorted({r.name for r in experiment_refs() if r.baseline == head} & set(names))
    if existing and not (args.force or args.resume):
        raise ValueError(
            f"experiment(s) {', '.join(existing)} exist on this commit already: summarise them with "
            f"`--summarise --label {label} --seed {seed}`, run only the missing folds with --resume, "
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
        print(
            f"warning: untracked files are not copied into the folds' temporary copies of the "
            f"repository: {listed(untracked)} (git add what the pipeline needs)",
            file=sys.stderr,
        )
    failed = []
    for fold in folds_to_run:
        name = names[fold]
        mode = "--queue" if args.queue else "--temp"
        print(f"fold {fold} of {folds}: {name}", file=sys.stderr, flush=True)
        overrides = [a for o in fold_overrides(folds, seed, fold, args.overrides) for a in ("-S", o)]
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


def cross_validate(request: CVRequest) -> CVSummary:
    """Run (or resume) every fold of the request and summarise them."""
    if request.force and request.resume:
        raise ValueError("--force runs every fold again, --resume only the missing ones: pick one")
    args, label = request, request.label or DEFAULT_LABEL
    if request.profile is not None:
        profile = load_profile(request.profile)
        check_overrides(profile.overrides())
        label = request.label or check_label(f"{profile.name}-v{profile.version}")
        args = replace(request, overrides=[*profile.overrides(), *request.overrides])
    check_overrides(args.overrides)
    names, commit = run_folds(args, label)
    refs = experiment_refs()
    done = [name for name in names if any(r.name == name and r.baseline == commit for r in refs)]
    if not done:
        raise ValueError("no fold finished: nothing to summarise (see DVC's output above)")
    summary = summarise(label, resolve(done, refs, commit))
    failed = [name for name in names if name not in done]
    if failed:
        raise ValueError(f"fold(s) failed: {', '.join(failed)}; the summary above leaves them out")
    return summary


def summarise_label(label: str, seed: int | None = None) -> list[CVSummary]:
    """Summarise every seed of the label's experiments (or only `seed`'s), each into
    cv/<label>/s<seed>/; over several seeds also cv/<label>/repeated.md and, when the seeds scored
    several models, what they chose for a pipeline run (recommended.yaml)."""
    refs, head = experiment_refs(), head_or_none()
    summaries = [
        summarise(label, resolve(names, refs, head)) for names in by_label(label, seed, refs).values()
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
    return summaries


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
