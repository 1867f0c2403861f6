"""Summaries of a patient-grouped cross-validation: one `split.strategy=kfold` experiment per fold.

Two readings of the same folds:
- per fold, and mean +- std over the folds, of the headline metrics of every scored entry of each
  experiment's metrics/evaluate.json (the models, the ensemble and the baselines);
- pooled out of fold: the folds' test predictions concatenated, so that every image is predicted
  once, by a model that never saw its patient, and scored as one test set, with intervals that
  resample patient groups (the split's unit). Threshold decisions are each fold's own (the
  `predicted` column), as chosen on that fold's validation split.

Pure functions from loaded experiments (params, evaluate.json, prediction tables) to tables,
markdown, JSON and a figure; `stages/cross_validate.py` runs and finds the experiments.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from stages.data.partition import folder_group
from stages.evaluation.metrics import image_metrics, patient_metrics, percentile_interval
from stages.evaluation.plots import CLASS_NAMES
from stages.pipeline.figures import save_figure
from stages.pipeline.files import write_json
from stages.pipeline.params import Params
from stages.pipeline.paths import predictions_file

CV_DIR = Path("cv")  # summaries, one folder per label and seed: cv/<label>/s<seed>/
PREDICTION_COLUMNS = ("filename", "patient", "actual", "predicted", "probability")

# (column in tables and JSON, level in evaluate.json, metric there, title)
HEADLINE = (
    ("image_accuracy", "image", "accuracy", "Accuracy"),
    ("image_balanced_accuracy", "image", "balanced_accuracy", "Balanced acc."),
    ("image_roc_auc", "image", "roc_auc", "ROC AUC"),
    ("patient_recognition_rate", "patient", "recognition_rate", "Patient recognition rate"),
    ("patient_accuracy", "patient", "accuracy", "Patient accuracy"),
)
METRICS = tuple(column for column, _, _, _ in HEADLINE)
TITLES = {column: title for column, _, _, title in HEADLINE}

NAME = re.compile(r"^cv-(?P<label>.+)-s(?P<seed>\d+)-f(?P<fold>\d+)$")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class OverlapError(ValueError):
    """Two experiments tested the same image: they are not folds of one cross-validation."""


# ---------------------------------------------------------------------------------------------
# names and places


def check_label(label: str) -> str:
    """A label goes into experiment names (git refs) and a folder name: letters, digits, `._-`."""
    if not LABEL.match(label) or ".." in label or label.endswith((".", ".lock")):
        raise ValueError(
            f"--label {label!r}: use letters, digits, '.', '_' and '-' (it names experiments and a folder)"
        )
    return label


def experiment_name(label: str, seed: int, fold: int) -> str:
    return f"cv-{label}-s{seed}-f{fold}"


def fold_overrides(folds: int, seed: int, fold: int, overrides: Sequence[str] = ()) -> list[str]:
    """The `-S` values of one fold's experiment (stages.cross_validate and stages.runners): the
    k-fold split, its size and seed, the user's `overrides`, then the fold."""
    return ["split.strategy=kfold", f"split.folds={folds}", f"seed={seed}", *overrides, f"split.fold={fold}"]


# the keys `fold_overrides` sets: a user override of one would break the cross-validation
FOLD_KEYS = frozenset(override.split("=")[0] for override in fold_overrides(2, 0, 0))


def parse_experiment_name(name: str) -> tuple[str, int, int] | None:
    """(label, seed, fold) of a name made by `experiment_name`, else None."""
    match = NAME.match(name)
    return (match["label"], int(match["seed"]), int(match["fold"])) if match else None


def summary_dir(label: str, seed: int) -> Path:
    return CV_DIR / label / f"s{seed}"


# ---------------------------------------------------------------------------------------------
# one fold


@dataclass(frozen=True)
class FoldSettings:
    """What makes an experiment a fold, read from its params.yaml (schema defaults when unset)."""

    strategy: str
    folds: int
    fold: int
    seed: int
    group_by: str
    resamples: int
    confidence: float


def fold_settings(params: dict[str, Any]) -> FoldSettings:
    """Read from the raw params (not validated: an older experiment may have keys since renamed)."""
    defaults = Params()
    split = params.get("split") or {}
    evaluate = params.get("evaluate") or {}
    return FoldSettings(
        strategy=str(split.get("strategy", defaults.split.strategy)),
        folds=int(split.get("folds", defaults.split.folds)),
        fold=int(split.get("fold", defaults.split.fold)),
        seed=int(params.get("seed", defaults.seed)),
        group_by=str(split.get("group_by", defaults.split.group_by)),
        resamples=int(evaluate.get("bootstrap_resamples", defaults.evaluate.bootstrap_resamples)),
        confidence=float(evaluate.get("confidence", defaults.evaluate.confidence)),
    )


@dataclass(frozen=True)
class FoldResult:
    """One experiment as loaded: its params.yaml, metrics/evaluate.json and test predictions."""

    name: str  # experiment name, or the revision as given
    rev: str  # its commit
    params: dict[str, Any]
    metrics: dict[str, Any]
    predictions: dict[str, pd.DataFrame]  # scored model -> plots/evaluate/predictions/<model>.csv
    baseline: str | None = None  # the commit the experiment was run on, when it is an experiment
    code: str | None = None  # identity of the code it ran (git tree ids of stages/ and dvc.yaml)

    @property
    def settings(self) -> FoldSettings:
        return fold_settings(self.params)

    @property
    def fold(self) -> int:
        return self.settings.fold


def scored_models(metrics: dict[str, Any]) -> list[str]:
    """Entries of evaluate.json scored like a model (an `image` section): models, ensemble, baselines."""
    return [
        key
        for key, value in metrics.items()
        if isinstance(value, dict) and isinstance(value.get("image"), dict)
    ]


def flat_baselines(metrics: dict[str, Any]) -> list[str]:
    """Entries that hold headline metrics as flat keys (`majority_baseline`: image_accuracy, ...)."""
    return [
        key
        for key, value in metrics.items()
        if isinstance(value, dict) and "image" not in value and any(_number(value.get(m)) for m in METRICS)
    ]


def _number(value: object) -> TypeGuard[float]:
    """A finite number (numpy's too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def headline(entry: dict[str, Any]) -> dict[str, float]:
    """The headline metrics of one evaluate.json entry; NaN where it has none."""
    values = {}
    for column, level, metric, _ in HEADLINE:
        value = entry[level].get(metric) if isinstance(entry.get(level), dict) else entry.get(column)
        values[column] = float(value) if _number(value) else math.nan
    return values


# ---------------------------------------------------------------------------------------------
# checks


@dataclass
class CheckedFolds:
    results: list[FoldResult]  # by fold
    settings: FoldSettings  # of the first fold (folds, seed, group_by agree across folds)
    missing_folds: list[int]
    models: list[str]  # scored with predictions
    baselines: list[str]  # flat entries
    warnings: list[str] = field(default_factory=list)


def _flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def check_folds(results: Sequence[FoldResult]) -> CheckedFolds:
    """The experiments must be distinct folds of one kfold cross-validation with test predictions
    of every scored model; missing folds are reported, not fatal."""
    if not results:
        raise ValueError("no experiments to summarise")
    for result in results:
        if result.settings.strategy != "kfold":
            raise ValueError(
                f"{result.name}: split.strategy is '{result.settings.strategy}', not 'kfold': "
                "it is not a fold of a cross-validation"
            )
    for what, attribute in (("seed", "seed"), ("split.folds", "folds"), ("split.group_by", "group_by")):
        values = {r.name: getattr(r.settings, attribute) for r in results}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{name} {value}" for name, value in values.items())
            raise ValueError(
                f"the experiments are not one cross-validation: they differ in {what} ({listed}); "
                "summarise each seed or number of folds on its own"
            )
    by_fold: dict[int, FoldResult] = {}
    for result in results:
        if result.fold in by_fold:
            raise ValueError(
                f"fold {result.fold} is given twice: {by_fold[result.fold].name} and {result.name}"
            )
        by_fold[result.fold] = result
    ordered = [by_fold[fold] for fold in sorted(by_fold)]
    settings = ordered[0].settings
    missing = [fold for fold in range(settings.folds) if fold not in by_fold]

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
    baselines = [
        name for name in flat_baselines(ordered[0].metrics) if all(name in r.metrics for r in ordered)
    ]

    warnings = []
    if missing:
        warnings.append(
            f"fold(s) {', '.join(map(str, missing))} of {settings.folds} missing: summarised "
            f"{len(ordered)} fold(s); the pooled metrics leave out the patients of the missing fold(s)"
        )
    flat = [_flatten(r.params) for r in ordered]
    differing = sorted(
        key
        for key in set().union(*flat)
        if key != "split.fold" and len({repr(params.get(key)) for params in flat}) > 1
    )
    if differing:
        warnings.append(f"the folds were run with different params: {', '.join(differing)}")
    if len({r.code for r in ordered}) > 1:
        warnings.append(
            "the folds ran different code (stages/ or dvc.yaml differ between their commits): was a "
            "file edited while the folds ran?"
        )
    if len({r.baseline for r in ordered}) > 1:
        warnings.append(
            "the folds were run on different commits: "
            + ", ".join(f"fold {r.fold} on {(r.baseline or r.rev)[:7]}" for r in ordered)
        )
    return CheckedFolds(ordered, settings, missing, models, baselines, warnings)


# ---------------------------------------------------------------------------------------------
# pooled out-of-fold predictions


def patient_groups(frame: pd.DataFrame, group_by: str) -> pd.Series:
    """The resampling unit of every prediction row, as the split grouped patients: the numeric slide
    root (the `patient_group` column, or derived from the slide folder) or the folder itself."""
    if group_by == "root" and "patient_group" in frame:
        return frame["patient_group"].astype(str)
    return frame["patient"].astype(str).map(lambda folder: folder_group(folder, group_by))


def pooled_predictions(checked: CheckedFolds, model: str) -> pd.DataFrame:
    """The model's test predictions of every fold in one table; each image must appear once.

    Adds `fold`, `experiment`, `threshold` (the fold's own), `target` and `decision` (0/1 of
    `actual` and `predicted`) and `group` (the patient group, the bootstrap's unit).
    """
    frames = []
    for result in checked.results:
        frame = result.predictions[model]
        missing = [column for column in PREDICTION_COLUMNS if column not in frame]
        if missing:
            raise ValueError(f"{result.name}: {predictions_file(model)} lacks column(s) {', '.join(missing)}")
        for column in ("actual", "predicted"):
            unknown = set(frame[column].astype(str)) - set(CLASS_NAMES)
            if unknown:
                raise ValueError(
                    f"{result.name}: {predictions_file(model)} column '{column}' holds "
                    f"{', '.join(sorted(unknown))}, not {' / '.join(CLASS_NAMES)}"
                )
        threshold = result.metrics[model].get("threshold")
        if not _number(threshold):
            raise ValueError(f"{result.name}: metrics/evaluate.json has no threshold for '{model}'")
        frames.append(frame.assign(fold=result.fold, experiment=result.name, threshold=float(threshold)))
    pooled = pd.concat(frames, ignore_index=True)
    repeated = pooled[pooled["filename"].duplicated(keep=False)]
    if len(repeated):
        where = repeated.groupby("filename", sort=True)["experiment"].agg(lambda s: sorted(set(s)))
        example, experiments = next(iter(where.items()))
        raise OverlapError(
            f"{len(where)} image(s) appear more than once in the test predictions of '{model}', e.g. "
            f"{example} (in {' and '.join(experiments)}): the experiments overlap (different seeds, "
            "numbers of folds or data mixed?); a cross-validation tests every image exactly once"
        )
    pooled["target"] = (pooled["actual"] == CLASS_NAMES[1]).astype(int)
    pooled["decision"] = (pooled["predicted"] == CLASS_NAMES[1]).astype(int)
    pooled["probability"] = pooled["probability"].astype(float)
    pooled["group"] = patient_groups(pooled, checked.settings.group_by)
    return pooled


def pooled_metrics(pooled: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Image and patient metrics of pooled predictions, with each fold's own threshold.

    Threshold metrics come from the `decision` column; ROC/PR AUC rank the probabilities of all
    folds together; a patient is classified by their mean probability against their fold's
    threshold (a patient is in one fold only).
    """
    targets = pooled["target"].to_numpy()
    decisions = pooled["decision"].to_numpy().astype(float)
    probabilities = pooled["probability"].to_numpy()
    margins = probabilities - pooled["threshold"].to_numpy()
    patients = pooled["patient"].to_numpy()
    decided = image_metrics(targets, decisions, 0.5)
    ranked = image_metrics(targets, probabilities, 0.5)
    image = {key: value for key, value in decided.items() if key not in ("roc_auc", "pr_auc")}
    image.update({key: ranked[key] for key in ("roc_auc", "pr_auc") if key in ranked})
    votes = patient_metrics(patients, targets, decisions, 0.5)
    means = patient_metrics(patients, targets, margins, 0.0)
    patient = {
        "recognition_rate": votes["recognition_rate"],
        "accuracy": means["accuracy"],
        "patients": means["patients"],
    }
    return {"image": image, "patient": patient}


def group_bootstrap(
    pooled: pd.DataFrame, *, resamples: int, confidence: float, seed: int
) -> dict[str, dict[str, float | int]]:
    """Percentile intervals of the headline metrics, resampling whole patient groups with
    replacement (a drawn group brings all its images and patients; images of one patient, and
    patients of one slide root, are not independent)."""
    targets = pooled["target"].to_numpy()
    probabilities = pooled["probability"].to_numpy()
    correct = pooled["decision"].to_numpy() == targets
    frame = pooled.assign(correct=correct, margin=probabilities - pooled["threshold"].to_numpy())
    patients = frame.groupby("patient", sort=True).agg(
        group=("group", "first"),
        target=("target", "first"),
        rate=("correct", "mean"),
        margin=("margin", "mean"),
    )
    rates = patients["rate"].to_numpy()
    right = ((patients["margin"] >= 0).astype(int) == patients["target"]).to_numpy()
    image_index = frame.groupby("group", sort=True).indices
    names = list(image_index)  # sorted by groupby
    images_of = [image_index[name] for name in names]
    patient_group = patients["group"].to_numpy()
    patients_of = [np.flatnonzero(patient_group == name) for name in names]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {column: [] for column in METRICS}
    for _ in range(resamples):
        chosen = rng.integers(len(names), size=len(names))
        index = np.concatenate([images_of[i] for i in chosen])
        people = np.concatenate([patients_of[i] for i in chosen])
        hits, truth = correct[index], targets[index]
        samples["image_accuracy"].append(float(hits.mean()))
        samples["patient_recognition_rate"].append(float(rates[people].mean()))
        samples["patient_accuracy"].append(float(right[people].mean()))
        if len(np.unique(truth)) == 2:
            sensitivity, specificity = hits[truth == 1].mean(), hits[truth == 0].mean()
            samples["image_balanced_accuracy"].append(float((sensitivity + specificity) / 2))
            samples["image_roc_auc"].append(float(skm.roc_auc_score(truth, probabilities[index])))
    return {column: percentile_interval(values, confidence) for column, values in samples.items() if values}


# ---------------------------------------------------------------------------------------------
# the summary


@dataclass
class CVSummary:
    label: str
    settings: FoldSettings
    experiments: list[dict[str, Any]]  # fold, name, rev, baseline, test images and patients
    missing_folds: list[int]
    models: list[str]  # scored entries, then flat baselines
    folds: pd.DataFrame  # one row per fold and model: the headline metrics (folds.csv)
    spread: dict[str, dict[str, dict[str, Any]]]  # model -> metric -> mean, std, folds
    pooled: dict[str, dict[str, Any]]  # model -> headline values, ci, images, patients, ...
    warnings: list[str]


def fold_table(checked: CheckedFolds) -> pd.DataFrame:
    """One row per fold and scored entry: its headline metrics, threshold and test set size."""
    rows = []
    for result in checked.results:
        tested = result.predictions[checked.models[0]]  # every model predicts the same test images
        for model in [*checked.models, *checked.baselines]:
            entry = result.metrics[model]
            threshold = entry.get("threshold")
            rows.append(
                {
                    "fold": result.fold,
                    "model": model,
                    **headline(entry),
                    "threshold": float(threshold) if _number(threshold) else math.nan,
                    "test_images": len(tested),
                    "test_patients": int(tested["patient"].nunique()),
                    "experiment": result.name,
                    "rev": result.rev,
                }
            )
    return pd.DataFrame(
        rows,
        columns=["fold", "model", *METRICS, "threshold", "test_images", "test_patients", "experiment", "rev"],
    )


def _finite(value: float) -> float | None:
    return float(value) if _number(value) else None


def mean_std(table: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean and (sample) standard deviation over the folds of each model's headline metrics."""
    spread: dict[str, dict[str, dict[str, Any]]] = {}
    for model, rows in table.groupby("model", sort=False):
        spread[str(model)] = {}
        for column in METRICS:
            values = rows[column].dropna()
            if len(values):
                spread[str(model)][column] = {
                    "mean": _finite(values.mean()),
                    "std": _finite(values.std(ddof=1)) if len(values) > 1 else None,
                    "folds": len(values),
                }
    return spread


def _pooled_flat(name: str, table: pd.DataFrame) -> dict[str, Any]:
    """A constant-prediction baseline pools exactly as the fold values weighted by test images
    (image metrics) or test patients (patient metrics): its folds' decisions do not interact."""
    rows = table[table["model"] == name]
    result: dict[str, Any] = {}
    for column in METRICS:
        weights = rows["test_patients" if column.startswith("patient") else "test_images"].astype(float)
        values = rows[column]
        if values.notna().all() and weights.notna().all() and weights.sum() > 0:
            result[column] = float((values * weights).sum() / weights.sum())
    return result


def summarize(results: Sequence[FoldResult], label: str) -> CVSummary:
    """Check the folds and compute the per-fold, mean +- std and pooled out-of-fold summaries."""
    checked = check_folds(results)
    settings = checked.settings
    table = fold_table(checked)
    pooled: dict[str, dict[str, Any]] = {}
    for model in checked.models:
        frame = pooled_predictions(checked, model)
        scores = pooled_metrics(frame)
        pooled[model] = {
            **{column: _finite(scores[level].get(metric, math.nan)) for column, level, metric, _ in HEADLINE},
            "ci": group_bootstrap(
                frame, resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed
            ),
            "images": len(frame),
            "patients": int(frame["patient"].nunique()),
            "patient_groups": int(frame["group"].nunique()),
            "image": scores["image"],
            "patient": scores["patient"],
        }
    for name in checked.baselines:
        pooled[name] = _pooled_flat(name, table)
    experiments = [
        {
            "fold": result.fold,
            "name": result.name,
            "rev": result.rev,
            "baseline": result.baseline,
            "test_images": int(table.loc[table["fold"] == result.fold, "test_images"].iloc[0]),
            "test_patients": int(table.loc[table["fold"] == result.fold, "test_patients"].iloc[0]),
        }
        for result in checked.results
    ]
    return CVSummary(
        label=label,
        settings=settings,
        experiments=experiments,
        missing_folds=checked.missing_folds,
        models=[*checked.models, *checked.baselines],
        folds=table,
        spread=mean_std(table),
        pooled=pooled,
        warnings=checked.warnings,
    )


# ---------------------------------------------------------------------------------------------
# markdown, JSON, figure


def _fmt(value: object) -> str:
    return f"{value:.3f}" if _number(value) else "-"


def _pooled_cell(entry: dict[str, Any], column: str) -> str:
    value = entry.get(column)
    interval = entry.get("ci", {}).get(column)
    if not _number(value):
        return "-"
    return f"{value:.3f} ({interval['low']:.2f}-{interval['high']:.2f})" if interval else f"{value:.3f}"


def _spread_cell(entry: dict[str, dict[str, Any]], column: str) -> str:
    stats = entry.get(column)
    if not stats or stats["mean"] is None:
        return "-"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if stats["std"] is not None else f"{stats['mean']:.3f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(summary: CVSummary, figure: str | None = "summary.png") -> str:
    """The summary as markdown: pooled table (the headline), mean +- std, then every fold."""
    s = summary.settings
    found = len(summary.experiments)
    images = max((entry.get("images", 0) for entry in summary.pooled.values()), default=0)
    scored = next((entry for entry in summary.pooled.values() if "images" in entry), {})
    titles = [TITLES[column] for column in METRICS]
    header = [_row(["Model", *titles]), "|---|" + "---:|" * len(METRICS)]
    lines = [
        f"# Cross-validation `{summary.label}`: {found} of {s.folds} folds, seed {s.seed}",
        "",
        f"Folds by patient group (`split.group_by: {s.group_by}`); every fold is one DVC experiment.",
        "",
    ]
    lines += [f"**Warning: {warning}.**\n" for warning in summary.warnings]
    lines += [
        "## Pooled out-of-fold",
        "",
        f"Every test image of the {found} fold(s) scored once, by the model of the fold that tested "
        f"it (which never saw its patient): {images} images, {scored.get('patients', 0)} patients, "
        f"{scored.get('patient_groups', 0)} patient groups. In brackets: {s.confidence:.0%} intervals "
        f"from {s.resamples} bootstrap resamples of patient groups. Decisions use each fold's own "
        "threshold; ROC AUC ranks the probabilities of all folds together.",
        "",
        *header,
        *(
            _row([model, *(_pooled_cell(summary.pooled[model], c) for c in METRICS)])
            for model in summary.models
        ),
        "",
        "## Mean ± std over folds",
        "",
        "How much a score depends on which patients are tested (sample standard deviation).",
        "",
        *header,
        *(
            _row([model, *(_spread_cell(summary.spread.get(model, {}), c) for c in METRICS)])
            for model in summary.models
        ),
        "",
        "## Per fold",
        "",
        _row(["Fold", "Experiment", "Commit", "Test images", "Test patients"]),
        "|---:|---|---|---:|---:|",
        *(
            _row(
                [
                    str(e["fold"]),
                    f"`{e['name']}`",
                    f"`{e['rev'][:7]}`",
                    str(e["test_images"]),
                    str(e["test_patients"]),
                ]
            )
            for e in summary.experiments
        ),
        "",
    ]
    folds = [e["fold"] for e in summary.experiments]
    for column in METRICS:
        values = summary.folds.pivot(index="model", columns="fold", values=column)
        lines += [
            f"### {TITLES[column]}",
            "",
            _row(["Model", *(f"fold {fold}" for fold in folds), "mean ± std"]),
            "|---|" + "---:|" * (len(folds) + 1),
        ]
        for model in summary.models:
            if values.loc[model].isna().all():
                continue  # a baseline without this metric
            cells = [_fmt(values.loc[model, fold]) for fold in folds]
            lines.append(_row([model, *cells, _spread_cell(summary.spread.get(model, {}), column)]))
        lines.append("")
    if figure:
        lines += [f"![Per-fold and pooled ROC AUC]({figure})", ""]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_json(summary: CVSummary) -> dict[str, Any]:
    s = summary.settings
    per_fold = {
        model: {column: dict(zip(rows["fold"].astype(str), rows[column], strict=True)) for column in METRICS}
        for model, rows in summary.folds.groupby("model", sort=False)
    }
    return _json_safe(
        {
            "label": summary.label,
            "seed": s.seed,
            "folds": s.folds,
            "group_by": s.group_by,
            "confidence": s.confidence,
            "resamples": s.resamples,
            "experiments": summary.experiments,
            "missing_folds": summary.missing_folds,
            "warnings": summary.warnings,
            "pooled": summary.pooled,
            "mean_std": summary.spread,
            "per_fold": per_fold,
        }
    )


def summary_figure(summary: CVSummary, path: Path) -> None:
    """Per-fold ROC AUC of every model (grey, labelled by fold) beside its pooled AUC and interval."""
    models = [
        m
        for m in summary.models
        if summary.folds.loc[summary.folds["model"] == m, "image_roc_auc"].notna().any()
    ]
    figure, axes = plt.subplots(figsize=(max(5.0, 1.2 * len(models) + 1.5), 4))
    for i, model in enumerate(models):
        rows = summary.folds[(summary.folds["model"] == model) & summary.folds["image_roc_auc"].notna()]
        x = i - 0.28 + 0.08 * (rows["fold"].to_numpy() % 3)  # apart, so equal values stay readable
        axes.scatter(
            x,
            rows["image_roc_auc"],
            color="grey",
            s=20,
            label="fold" if i == 0 else None,
        )
        for fold, position, value in zip(rows["fold"], x, rows["image_roc_auc"], strict=True):
            axes.annotate(
                str(fold), (position, value), xytext=(-6, 4), textcoords="offset points", fontsize=7
            )
        pooled = summary.pooled.get(model, {})
        auc, interval = pooled.get("image_roc_auc"), pooled.get("ci", {}).get("image_roc_auc")
        if _number(auc):
            error = [[auc - interval["low"]], [interval["high"] - auc]] if interval else None
            axes.errorbar(
                i + 0.12,
                auc,
                yerr=error,
                fmt="o",
                color="C0",
                capsize=4,
                label=f"pooled ({summary.settings.confidence:.0%} interval)" if i == 0 else None,
            )
    axes.axhline(0.5, linestyle=":", color="grey")
    axes.set(
        xticks=range(len(models)),
        xticklabels=models,
        xlim=(-0.6, max(len(models), 2) - 0.4),
        ylim=(0, 1.02),
        ylabel="ROC AUC (test)",
    )
    axes.set_title(
        f"Cross-validation {summary.label}: seed {summary.settings.seed}, "
        f"{len(summary.experiments)} of {summary.settings.folds} folds",
        fontsize=10,
    )
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def write_summary(summary: CVSummary, directory: Path) -> str:
    """Write summary.md, summary.json, folds.csv and summary.png into `directory`; return the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    text = markdown(summary)
    (directory / "summary.md").write_text(text)
    write_json(directory / "summary.json", summary_json(summary))
    summary.folds.to_csv(directory / "folds.csv", index=False)
    summary_figure(summary, directory / "summary.png")
    return text
