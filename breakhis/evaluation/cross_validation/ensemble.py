"""The ensemble chosen out of fold: for every test fold, the members of the soft vote are chosen on
the pooled out-of-fold predictions of the other folds' patients (the training patients of that
fold), never on the fold it is scored on, then applied to it.

The candidates are every non-empty set of models, each averaged with equal weights; a model whose
pooled ROC AUC on those patients does not beat the colour baseline's is left out (when none does,
the best single model is the only candidate). The set with the highest pooled AUC there wins; a tie
goes to the smaller set. Single models are candidates, so on the patients it is chosen on the
ensemble is never below its best member; the pooled table says whether that held on the patients it
was not chosen on. Its threshold is chosen the same way: Youden's J (the balanced-accuracy
optimum) of the chosen members' mean on the other folds' patients. The same choices on all the
folds are the recommendation for a final model (`evaluate.members`, `evaluate.threshold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from breakhis.data.task_of import SUBTYPE_PROBABILITY_COLUMNS, predictions_task
from breakhis.evaluation.decision import choose_threshold
from breakhis.evaluation.plots import CLASS_NAMES
from breakhis.pipeline.param_types import YOUDEN
from breakhis.pipeline.task import predicted_subtypes

ENSEMBLE_OUT_OF_FOLD = "ensemble_oof"  # its name in the summary's tables


@dataclass(frozen=True)
class MemberChoice:
    members: tuple[str, ...]
    auc: float  # pooled ROC AUC of their mean on the patients it was chosen on
    model_aucs: dict[str, float]  # each model's there
    colour_auc: float  # the colour baseline's there
    threshold: float  # Youden's on their mean there (the balanced-accuracy optimum)


def _auc(targets: np.ndarray, scores: np.ndarray) -> float:
    return float(skm.roc_auc_score(targets, scores)) if len(np.unique(targets)) == 2 else float("nan")


def choose_members(
    probabilities: pd.DataFrame, colour: np.ndarray, targets: np.ndarray, models: Sequence[str]
) -> MemberChoice:
    """The best equal-weight set of `models` (columns of `probabilities`) on these rows."""
    model_aucs = {name: _auc(targets, probabilities[name].to_numpy()) for name in models}
    colour_auc = _auc(targets, colour)
    eligible = [name for name in models if model_aucs[name] > colour_auc]
    if not eligible:
        eligible = [max(models, key=lambda name: model_aucs[name])]
    best: tuple[float, int, tuple[str, ...]] | None = None
    for size in range(1, len(eligible) + 1):
        for members in combinations(eligible, size):
            auc = _auc(targets, probabilities[list(members)].mean(axis=1).to_numpy())
            if best is None or auc > best[0]:  # strictly better: ties keep the smaller, earlier set
                best = (auc, size, members)
    assert best is not None
    mean = probabilities[list(best[2])].mean(axis=1).to_numpy()
    threshold = choose_threshold(targets, mean, YOUDEN) if len(np.unique(targets)) == 2 else 0.5
    return MemberChoice(best[2], best[0], model_aucs, colour_auc, threshold)


@dataclass(frozen=True)
class OutOfFoldEnsemble:
    pooled: pd.DataFrame  # as breakhis.evaluation.cross_validation.pooled.pooled_predictions
    per_fold: dict[int, MemberChoice]  # test fold -> the members chosen on the other folds
    all_folds: MemberChoice  # chosen on every fold: the recommendation for a final model


def out_of_fold_ensemble(
    pooled: Mapping[str, pd.DataFrame], models: Sequence[str], colour: str
) -> OutOfFoldEnsemble:
    """`pooled`: each model's (and the colour baseline's and the fold ensemble's) pooled predictions
    (`pooled_predictions`), every image once. Each test fold's members and threshold are chosen on
    the other folds' rows."""
    base = pooled["ensemble"].sort_values("filename").reset_index(drop=True)
    aligned = {
        name: pooled[name].set_index("filename")["probability"].reindex(base["filename"]).to_numpy()
        for name in [*models, colour]
    }
    probabilities = pd.DataFrame({name: aligned[name] for name in models})
    columns = list(SUBTYPE_PROBABILITY_COLUMNS)  # task: subtype: the members' rows are averaged too
    subtypes = (
        {
            name: pooled[name].set_index("filename")[columns].reindex(base["filename"]).to_numpy()
            for name in models
        }
        if all(predictions_task(pooled[name]) == "subtype" for name in models)
        else None
    )
    combined_subtypes = np.full((len(base), len(columns)), np.nan)
    targets = base["target"].to_numpy()
    folds = base["fold"].to_numpy()
    combined = np.full(len(base), np.nan)
    thresholds = np.full(len(base), np.nan)
    per_fold = {}
    for fold in sorted(set(folds.tolist())):
        train = folds != fold
        choice = choose_members(probabilities[train], aligned[colour][train], targets[train], models)
        per_fold[int(fold)] = choice
        combined[~train] = probabilities.loc[~train, list(choice.members)].mean(axis=1).to_numpy()
        thresholds[~train] = choice.threshold
        if subtypes is not None:
            combined_subtypes[~train] = np.mean([subtypes[name][~train] for name in choice.members], axis=0)
    frame = base.assign(probability=combined, threshold=thresholds)
    if subtypes is not None:
        frame[columns] = combined_subtypes
        frame["predicted_subtype"] = predicted_subtypes(combined_subtypes)
    else:  # the fold ensemble's subtype columns are not this ensemble's
        frame = frame.drop(columns=[c for c in (*columns, "predicted_subtype") if c in frame])
    frame["decision"] = (frame["probability"] >= frame["threshold"]).astype(int)
    frame["predicted"] = np.where(frame["decision"] == 1, CLASS_NAMES[1], CLASS_NAMES[0])
    everywhere = choose_members(probabilities, aligned[colour], targets, models)
    return OutOfFoldEnsemble(frame, per_fold, everywhere)


TOLERANCE = 0.01  # how far below its best member a pipeline's ensemble may score in a seed


@dataclass(frozen=True)
class SeedsChoice:
    """The members and threshold a pipeline run should use, chosen on repeated cross-validation."""

    members: tuple[str, ...]
    threshold: float  # Youden's J on their mean over every seed's out-of-fold predictions
    aucs: dict[int, float]  # seed -> pooled out-of-fold ROC AUC of their mean
    best_member: dict[int, tuple[str, float]]  # seed -> the best of the members alone, and its AUC
    candidates: list[tuple[tuple[str, ...], dict[int, float]]]  # every set tried: its AUC per seed

    def margin(self, seed: int) -> float:
        """The ensemble's AUC minus its best member's in the seed (0 for one member)."""
        return self.aucs[seed] - self.best_member[seed][1]


def aligned_probabilities(predictions: Mapping[str, pd.DataFrame], models: Sequence[str]) -> pd.DataFrame:
    """One seed's pooled out-of-fold predictions (`CVSummary.predictions`) as one row per image:
    `target` and each model's probability, in file-name order."""
    base = predictions[models[0]].sort_values("filename").reset_index(drop=True)
    table = pd.DataFrame({"filename": base["filename"], "target": base["target"]})
    for name in models:
        table[name] = (
            predictions[name].set_index("filename")["probability"].reindex(base["filename"]).to_numpy()
        )
    return table


def choose_over_seeds(seeds: Mapping[int, pd.DataFrame], models: Sequence[str]) -> SeedsChoice:
    """`seeds`: each seed's `aligned_probabilities`. Among the equal-weight sets of `models` whose
    mean scores within TOLERANCE of their best member in every seed (a single model always does),
    the one with the highest mean pooled AUC over the seeds; a tie goes to the smaller set. Its
    threshold is Youden's on every seed's rows together."""
    candidates = []
    for size in range(1, len(models) + 1):
        for members in combinations(models, size):
            candidates.append(
                (
                    members,
                    {
                        s: _auc(t["target"].to_numpy(), t[list(members)].mean(axis=1).to_numpy())
                        for s, t in seeds.items()
                    },
                )
            )
    alone = {name: aucs for (name, *rest), aucs in candidates if not rest}

    def best_of(members: tuple[str, ...], seed: int) -> tuple[str, float]:
        name = max(members, key=lambda m: alone[m][seed])
        return name, alone[name][seed]

    def holds(members: tuple[str, ...], aucs: dict[int, float]) -> bool:
        return all(aucs[s] >= best_of(members, s)[1] - TOLERANCE for s in seeds)

    holding = [(members, aucs) for members, aucs in candidates if holds(members, aucs)]
    if not holding:
        raise ValueError("no model could be scored in every seed (out-of-fold predictions of one class?)")
    chosen, aucs = max(holding, key=lambda item: (float(np.mean(list(item[1].values()))), -len(item[0])))
    rows = pd.concat(seeds.values(), ignore_index=True)
    threshold = choose_threshold(
        rows["target"].to_numpy(), rows[list(chosen)].mean(axis=1).to_numpy(), YOUDEN
    )
    return SeedsChoice(chosen, threshold, aucs, {s: best_of(chosen, s) for s in seeds}, candidates)
