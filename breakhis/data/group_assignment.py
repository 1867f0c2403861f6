"""Stratified assignment of whole groups to parts: the splits, or the folds.

Groups are assigned whole, by a seeded greedy pass (groups in random order, each to
the part that leaves the smallest squared gap between the images each part has and the images it
should have) polished by single-group moves and pairwise swaps until nothing improves. The gap is
counted per class, plus half-weighted per class+subtype, so classes are matched first and subtypes
as far as the groups allow (a subtype with fewer groups than parts cannot be everywhere).
With one image per group this puts every part within one image of its share of every class.

`task: subtype` (the eight subtypes are the classes): the subtype gap weighs twice the class gap,
then groups are moved so that every part holds every subtype that has at least as many groups as
there are parts (`_cover_subtypes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SUBTYPE_WEIGHT = 0.5  # weight of the per-subtype gap relative to the per-class gap
SUBTYPE_TASK_WEIGHT = 2.0  # the same with task: subtype, where the subtypes are the classes
POLISH_MAX_GROUPS = 2000  # the move/swap polish is quadratic; single-image groups do not need it
POLISH_MAX_PASSES = 50
TOLERANCE = 1e-6
Seed = int | list[int]  # anything np.random.default_rng takes


def _polish(counts: np.ndarray, weights: np.ndarray, excess: np.ndarray, part: np.ndarray) -> None:
    """Move or swap single groups between parts while that lowers the weighted squared gap."""
    for _ in range(POLISH_MAX_PASSES):
        improved = False
        for g in range(len(counts)):
            p, x = part[g], counts[g]
            gains = 2 * ((excess - excess[p] + x) * x * weights).sum(axis=1)  # move g from p to q
            q = int(np.argmin(gains))
            if gains[q] < -TOLERANCE:
                excess[p] -= x
                excess[q] += x
                part[g] = q
                improved = True
                continue
            d = x - counts  # swap g (in p) with b (in part[b]): p loses d, part[b] gains d
            gains = 2 * ((excess[part] - excess[p] + d) * d * weights).sum(axis=1)
            gains[part == p] = np.inf
            b = int(np.argmin(gains))
            if gains[b] < -TOLERANCE:
                q = part[b]
                excess[p] -= d[b]
                excess[q] += d[b]
                part[g], part[b] = q, p
                improved = True
        if not improved:
            return


def assign_groups(
    frame: pd.DataFrame, keys: pd.Series, fractions: Sequence[float], seed: Seed, *, subtypes: bool = False
) -> pd.Series:
    """Part index (0..len(fractions)-1) of every group, each part getting about its fraction of
    the images of every class, then of every subtype; with `subtypes` (task: subtype), subtypes
    weigh more and every part is given every subtype the groups allow. Seeded; independent of row order."""
    strata_class = frame["target"].astype(str)
    strata_subtype = strata_class + "/" + frame["subtype"].astype(str)
    by_class = pd.crosstab(keys, strata_class)
    by_subtype = pd.crosstab(keys, strata_subtype).reindex(by_class.index)
    counts = np.hstack([by_class.to_numpy(float), by_subtype.to_numpy(float)])
    subtype_weight = SUBTYPE_TASK_WEIGHT if subtypes else SUBTYPE_WEIGHT
    weights = np.concatenate([np.ones(by_class.shape[1]), np.full(by_subtype.shape[1], subtype_weight)])
    shares = np.asarray(fractions, dtype=float)[:, None]
    excess = -shares * counts.sum(axis=0)  # images a part has minus images it should have
    part = np.zeros(len(counts), dtype=int)
    for g in np.random.default_rng(seed).permutation(len(counts)):
        x = counts[g]
        p = int(np.argmin(((2 * excess + x) * x * weights).sum(axis=1)))
        part[g] = p
        excess[p] += x
    if len(counts) <= POLISH_MAX_GROUPS:
        _polish(counts, weights, excess, part)
    if subtypes:
        _cover_subtypes(by_subtype.to_numpy() > 0, counts, weights, excess, part)
    return pd.Series(part, index=by_class.index, name="part")


def _cover_subtypes(
    holds: np.ndarray, counts: np.ndarray, weights: np.ndarray, excess: np.ndarray, part: np.ndarray
) -> None:
    """Move groups so that every part holds every subtype (`holds[g, s]`: group g has images of
    subtype s) that has at least as many groups as there are parts, rarest subtype first. A group
    moves only from a part that keeps another group of each subtype it holds; of those, the move
    that widens the weighted squared gap least. Deterministic."""
    parts = len(excess)
    for s in np.argsort(holds.sum(axis=0), kind="stable"):
        if holds[:, s].sum() < parts:
            continue  # it cannot be everywhere: the split checks name it
        for p in range(parts):
            if holds[part == p, s].any():
                continue
            best, best_cost = None, np.inf
            for g in np.flatnonzero(holds[:, s]):
                q = part[g]
                others = holds[(part == q) & (np.arange(len(part)) != g)]
                if not others[:, holds[g]].any(axis=0).all():
                    continue  # q would lose its last group of a subtype g holds
                x = counts[g]
                cost = (
                    ((excess[p] + x) ** 2 - excess[p] ** 2 + (excess[q] - x) ** 2 - excess[q] ** 2) * weights
                ).sum()
                if cost < best_cost:
                    best, best_cost = g, cost
            if best is not None:
                excess[part[best]] -= counts[best]
                excess[p] += counts[best]
                part[best] = p
