"""Pooled out-of-fold predictions: every fold's test predictions of a model in one table (each image
once), their metrics with each fold's own threshold, and intervals that resample patient groups."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from breakhis.data.patient_groups import folder_group
from breakhis.data.task_of import ACTUAL_SUBTYPE_COLUMN, SUBTYPE_PROBABILITY_COLUMNS, predictions_task
from breakhis.evaluation.bootstrap import Draw, GroupBootstrap, Interval
from breakhis.evaluation.cross_validation.checks import CheckedFolds
from breakhis.evaluation.decision import stored_threshold
from breakhis.evaluation.metrics import (
    ACCURACY,
    BALANCED_ACCURACY,
    PATIENT_ACCURACY,
    RECOGNITION_RATE,
    ROC_AUC,
    image_metrics,
    patient_metrics,
    per_patient,
)
from breakhis.evaluation.plots import CLASS_NAMES
from breakhis.evaluation.subtype import evaluate_subtypes
from breakhis.evaluation.subtype import image_metrics as subtype_image_metrics
from breakhis.pipeline.paths import predictions_file
from breakhis.pipeline.task import SUBTYPE_CLASSES, subtype_index

PREDICTION_COLUMNS = ("filename", "patient", "actual", "predicted", "probability")


class OverlapError(ValueError):
    """Two experiments tested the same image: they are not folds of one cross-validation."""


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
        threshold = stored_threshold(result.metrics, model)
        if threshold is None:
            raise ValueError(f"{result.name}: metrics/evaluate.json has no threshold for '{model}'")
        frames.append(frame.assign(fold=result.fold, experiment=result.name, threshold=threshold))
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


def follows_colour(predictions: pd.DataFrame, colour: pd.DataFrame) -> float | None:
    """How closely a model ranks patients as the colour baseline does: the Spearman correlation, over
    the patients of both tables, of their mean probabilities. Near 1, the model sorts patients by
    their slides' stain; None with fewer than three patients or a constant column."""
    means = pd.DataFrame(
        {
            "model": predictions.groupby("patient")["probability"].mean(),
            "colour": colour.groupby("patient")["probability"].mean(),
        }
    ).dropna()
    if len(means) < 3 or means.nunique().min() < 2:
        return None
    return float(means["model"].corr(means["colour"], method="spearman"))


def pooled_intervals(
    pooled: pd.DataFrame, *, resamples: int, confidence: float, seed: int
) -> dict[str, Interval]:
    """Percentile intervals of the headline metrics, resampling whole patient groups with
    replacement (breakhis.evaluation.bootstrap: a drawn group brings all its images and patients).
    The patients' rates and classes are metrics.per_patient's, as in `pooled_metrics`."""
    targets = pooled["target"].to_numpy()
    probabilities = pooled["probability"].to_numpy()
    correct = pooled["decision"].to_numpy() == targets
    patients = pooled["patient"].to_numpy()
    decisions = pooled["decision"].to_numpy().astype(float)
    margins = probabilities - pooled["threshold"].to_numpy()
    rates = per_patient(patients, targets, decisions, 0.5)["correct"].to_numpy()
    means = per_patient(patients, targets, margins, 0.0)
    right = ((means["probability"] >= 0).astype(int) == means["target"]).to_numpy()
    bootstrap = GroupBootstrap(pooled["group"])
    patient_group = pooled.groupby("patient", sort=True)["group"].first().to_numpy()
    patients_of = [np.flatnonzero(patient_group == name) for name in bootstrap.names]

    def statistics(draw: Draw) -> dict[str, float | None]:
        people = np.concatenate([patients_of[i] for i in draw.chosen])
        hits, truth = correct[draw.rows], targets[draw.rows]
        both = len(np.unique(truth)) == 2
        return {
            ACCURACY.column: float(hits.mean()),
            BALANCED_ACCURACY.column: (
                float((hits[truth == 1].mean() + hits[truth == 0].mean()) / 2) if both else None
            ),
            ROC_AUC.column: float(skm.roc_auc_score(truth, probabilities[draw.rows])) if both else None,
            RECOGNITION_RATE.column: float(rates[people].mean()),
            PATIENT_ACCURACY.column: float(right[people].mean()),
        }

    return bootstrap.intervals(statistics, resamples=resamples, confidence=confidence, seed=seed)


def pooled_subtypes(
    pooled: pd.DataFrame, *, resamples: int, confidence: float, seed: int
) -> dict[str, Any] | None:
    """task: subtype: the subtype metrics of a model's pooled predictions (their `p_<subtype>` and
    `actual_subtype` columns), with patient-group intervals; None for a binary model's."""
    if predictions_task(pooled) != "subtype":
        return None
    probabilities = pooled[list(SUBTYPE_PROBABILITY_COLUMNS)].to_numpy(dtype=float)
    rows = pooled.assign(subtype=pooled[ACTUAL_SUBTYPE_COLUMN], patient_group=pooled["group"])
    entry = evaluate_subtypes(rows, probabilities, resamples=resamples, confidence=confidence, seed=seed)
    return {key: entry[key] for key in ("image", "patient", "per_class", "ci")}


def pooled_majority_subtype(checked: CheckedFolds, pooled: pd.DataFrame) -> dict[str, Any] | None:
    """The majority-subtype baseline out of fold: each fold's own majority subtype of its train
    split (evaluate.json's `majority_subtype_baseline`) predicted for every image it tested."""
    chosen = {
        r.fold: (r.metrics.get("majority_subtype_baseline") or {}).get("subtype") for r in checked.results
    }
    if predictions_task(pooled) != "subtype" or None in chosen.values():
        return None
    constant = np.zeros((len(pooled), len(SUBTYPE_CLASSES)))
    constant[np.arange(len(pooled)), [SUBTYPE_CLASSES.index(chosen[f]) for f in pooled["fold"]]] = 1.0
    actual = subtype_index(pooled.assign(subtype=pooled["actual_subtype"]))
    image = subtype_image_metrics(actual, constant)
    return {
        "subtypes": sorted(set(chosen.values()), key=SUBTYPE_CLASSES.index),
        "image": {key: image[key] for key in ("accuracy", "balanced_accuracy", "macro_f1")},
    }
