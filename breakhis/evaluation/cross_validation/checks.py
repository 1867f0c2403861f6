"""Are these experiments the folds of one cross-validation? Distinct folds of one `kfold` split
(same seed, number of folds and grouping) that score the same models, with test predictions of
each; missing folds, and folds run with other params, code or commits, are warnings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from breakhis.evaluation.cross_validation.folds import FoldResult, FoldSettings, flat_baselines, scored_models
from breakhis.pipeline.paths import predictions_file
from breakhis.pipeline.profiles import flatten


@dataclass
class CheckedFolds:
    results: list[FoldResult]  # by fold
    settings: FoldSettings  # of the first fold (folds, seed, group_by agree across folds)
    missing_folds: list[int]
    models: list[str]  # scored with predictions
    baselines: list[str]  # flat entries
    warnings: list[str] = field(default_factory=list)


def check_folds(results: Sequence[FoldResult]) -> CheckedFolds:
    """The experiments must be distinct folds of one kfold cross-validation with test predictions
    of every scored model; missing folds are reported, not fatal."""
    check_one_cross_validation(results)
    ordered = distinct_folds(results)
    settings = ordered[0].settings
    present = {result.fold for result in ordered}
    missing = [fold for fold in range(settings.folds) if fold not in present]
    models = pooled_models(ordered)
    baselines = [
        name for name in flat_baselines(ordered[0].metrics) if all(name in r.metrics for r in ordered)
    ]
    return CheckedFolds(ordered, settings, missing, models, baselines, fold_warnings(ordered, missing))


def check_one_cross_validation(results: Sequence[FoldResult]) -> None:
    """Some experiments, every one a kfold fold, all of one task, seed, number of folds and grouping."""
    if not results:
        raise ValueError("no experiments to summarise")
    for result in results:
        if result.settings.strategy != "kfold":
            raise ValueError(
                f"{result.name}: split.strategy is '{result.settings.strategy}', not 'kfold': "
                "it is not a fold of a cross-validation"
            )
    for what, attribute in (
        ("task", "task"),
        ("seed", "seed"),
        ("split.folds", "folds"),
        ("split.group_by", "group_by"),
    ):
        values = {r.name: getattr(r.settings, attribute) for r in results}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{name} {value}" for name, value in values.items())
            raise ValueError(
                f"the experiments are not one cross-validation: they differ in {what} ({listed}); "
                "summarise each task, seed or number of folds on its own"
            )


def distinct_folds(results: Sequence[FoldResult]) -> list[FoldResult]:
    """The experiments by fold; a fold given twice is refused."""
    by_fold: dict[int, FoldResult] = {}
    for result in results:
        if result.fold in by_fold:
            raise ValueError(
                f"fold {result.fold} is given twice: {by_fold[result.fold].name} and {result.name}"
            )
        by_fold[result.fold] = result
    return [by_fold[fold] for fold in sorted(by_fold)]


def pooled_models(ordered: list[FoldResult]) -> list[str]:
    """The models every fold scores, each with its test predictions in every fold."""
    models = scored_models(ordered[0].metrics)
    if not models:
        raise ValueError(
            f"{ordered[0].name}: its metrics/evaluate.json scores no model (no entry with `image`)"
        )
    for result in ordered[1:]:
        if scored_models(result.metrics) != models:
            raise ValueError(
                f"the experiments score different models: {ordered[0].name} has {', '.join(models)}; "
                f"{result.name} has {', '.join(scored_models(result.metrics))}"
            )
    for result in ordered:
        for model in models:
            if model not in result.predictions:
                raise ValueError(
                    f"{result.name} (fold {result.fold}): no {predictions_file(model)} "
                    f"(its metrics/evaluate.json scores '{model}'), so it cannot be pooled"
                )
    return models


def fold_warnings(ordered: list[FoldResult], missing: list[int]) -> list[str]:
    """Missing folds, and folds run with other params, code or commits."""
    settings = ordered[0].settings
    warnings = []
    if missing:
        warnings.append(
            f"fold(s) {', '.join(map(str, missing))} of {settings.folds} missing: summarised "
            f"{len(ordered)} fold(s); the pooled metrics leave out the patients of the missing fold(s)"
        )
    flat = [flatten(r.params) for r in ordered]
    differing = sorted(
        key
        for key in set().union(*flat)
        if key != "split.fold" and len({repr(params.get(key)) for params in flat}) > 1
    )
    if differing:
        warnings.append(f"the folds were run with different params: {', '.join(differing)}")
    if len({r.code for r in ordered}) > 1:
        warnings.append(
            "the folds ran different code (breakhis/, stages/, commands/ or dvc.yaml differ between their "
            "commits): was a "
            "file edited while the folds ran?"
        )
    if len({r.baseline for r in ordered}) > 1:
        warnings.append(
            "the folds were run on different commits: "
            + ", ".join(f"fold {r.fold} on {(r.baseline or r.rev)[:7]}" for r in ordered)
        )
    return warnings
