"""Paired ablations on fixed folds: is a variant of the recipe better than the reference, in every
seed?

A variant and the reference are cross-validated with the same seeds; a seed assigns the same
patient groups to the same folds whatever the params, so each image is tested, in both, by a
model of the same fold that never saw its patient. For every model, the variant's pooled
out-of-fold ROC AUC minus the reference's comes with a paired bootstrap interval over patient
groups and a verdict (breakhis.evaluation.comparison), per seed and pooled over the seeds (every
seed's images together; a drawn patient group brings its images of every seed). Seeds are the
unit: a lever `holds` when its verdict is `better` in every seed, `hurts` when `worse` in every
seed, is `within noise in every seed` when no seed's interval excludes zero; otherwise the seeds
disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from breakhis.evaluation.bootstrap import BETTER, NOISE, WORSE
from breakhis.evaluation.comparison import paired_comparison
from breakhis.evaluation.metrics import ROC_AUC
from breakhis.evaluation.tables import interval, is_number, number, table

HOLDS, HURTS, NO_EFFECT, MIXED = "holds", "hurts", "within noise in every seed", "the seeds disagree"

LEVER = {frozenset({BETTER}): HOLDS, frozenset({WORSE}): HURTS, frozenset({NOISE}): NO_EFFECT}


class Scored(Protocol):
    """What a comparison needs of one seed's cross-validation (a `CVSummary` has it)."""

    @property
    def predictions(self) -> Mapping[str, pd.DataFrame]: ...  # model -> pooled out-of-fold predictions

    @property
    def pooled(self) -> Mapping[str, Mapping[str, Any]]: ...  # model -> {"colour_spearman": ...}


@dataclass(frozen=True)
class Settings:
    resamples: int
    confidence: float
    seed: int  # of the bootstrap draws


def _auc_difference(reference: pd.DataFrame, variant: pd.DataFrame, settings: Settings) -> dict[str, Any]:
    result = paired_comparison(
        reference,
        variant,
        resamples=settings.resamples,
        confidence=settings.confidence,
        seed=settings.seed,
    )
    if not result["comparable"]:
        return {"verdict": result["verdict"], "reason": result["reason"]}
    return result["metrics"][ROC_AUC.name]


def _over_seeds(frames: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """Every seed's pooled predictions as one table: an image once per seed."""
    return pd.concat(
        [
            frame.assign(filename=f"s{seed}/" + frame["filename"].astype(str))
            for seed, frame in frames.items()
        ],
        ignore_index=True,
    )


def compare_variant(
    reference: Mapping[int, Scored], variant: Mapping[int, Scored], settings: Settings
) -> dict[str, dict[str, Any]]:
    """model -> {"seeds": {seed: difference}, "pooled": difference over the seeds, "verdict",
    "spearman": {"reference": mean, "variant": mean}} for every model both cross-validations scored
    in every seed. A difference: base (reference) and new (variant) AUC, difference, low, high,
    verdict."""
    seeds = sorted(reference)
    if sorted(variant) != seeds:
        raise ValueError(
            f"the reference has seeds {seeds}, the variant {sorted(variant)}: pair them seed by seed"
        )
    models = [
        model
        for model in reference[seeds[0]].predictions
        if all(model in reference[s].predictions and model in variant[s].predictions for s in seeds)
    ]
    results = {}
    for model in models:
        per_seed = {
            seed: _auc_difference(
                reference[seed].predictions[model], variant[seed].predictions[model], settings
            )
            for seed in seeds
        }
        pooled = _auc_difference(
            _over_seeds({s: reference[s].predictions[model] for s in seeds}),
            _over_seeds({s: variant[s].predictions[model] for s in seeds}),
            settings,
        )
        verdicts = {entry["verdict"] for entry in per_seed.values()}
        results[model] = {
            "seeds": per_seed,
            "pooled": pooled,
            "verdict": LEVER.get(frozenset(verdicts), MIXED),
            "spearman": {
                "reference": _mean_spearman([reference[s].pooled.get(model, {}) for s in seeds]),
                "variant": _mean_spearman([variant[s].pooled.get(model, {}) for s in seeds]),
            },
        }
    return results


def _mean_spearman(entries: list[Mapping[str, Any]]) -> float | None:
    values = [entry.get("colour_spearman") for entry in entries]
    numbers = [float(v) for v in values if is_number(v)]
    return float(np.mean(numbers)) if numbers and len(numbers) == len(values) else None


def _difference_cell(entry: dict[str, Any]) -> str:
    if "difference" not in entry:
        return str(entry.get("verdict", ""))
    word = entry["verdict"]
    return (
        f"{number(entry['difference'], sign=True)} ({interval(entry['low'], entry['high'], 2, sign=True)}) "
        + (f"**{word}**" if word in (BETTER, WORSE) else word)
    )


def ablation_markdown(
    label: str,
    variants: Mapping[str, list[str]],
    results: Mapping[str, dict[str, dict[str, Any]]],
    confidence: float,
) -> str:
    """One table per variant: each model's AUC difference from the reference per seed and pooled,
    with intervals and verdicts, whether it holds, and the Spearman correlation with the colour
    baseline in the reference and in the variant."""
    lines = [
        f"# Paired ablation `{label}`",
        "",
        "Each variant against the reference on the same patient folds and seeds: pooled out-of-fold "
        f"ROC AUC of the variant minus the reference's, with a {confidence:.0%} paired bootstrap interval "
        "over patient groups, per seed and over all seeds. A lever **holds** when it is better in every "
        "seed. Spearman: the correlation, over patients, of a model's mean probability with the colour "
        "baseline's (mean over the seeds; lower: it follows the stain less).",
        "",
    ]
    for name, result in results.items():
        if not result:
            continue
        seeds = list(next(iter(result.values()))["seeds"])
        rows = [
            [
                model,
                number(entry["pooled"].get("base")),
                number(entry["pooled"].get("new")),
                *(_difference_cell(entry["seeds"][seed]) for seed in seeds),
                _difference_cell(entry["pooled"]),
                entry["verdict"],
                f"{number(entry['spearman']['reference'], 2)} -> {number(entry['spearman']['variant'], 2)}",
            ]
            for model, entry in result.items()
        ]
        lines += [
            f"## {name}: `{' '.join(variants[name])}`",
            "",
            *table(
                [
                    "Model",
                    "reference AUC",
                    "variant AUC",
                    *(f"seed {seed}" for seed in seeds),
                    "all seeds",
                    "lever",
                    "Spearman with colour",
                ],
                rows,
                "lrr" + "l" * (len(seeds) + 3),
            ),
            "",
        ]
    return "\n".join(lines)
