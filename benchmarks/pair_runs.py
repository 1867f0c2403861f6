"""Paired verdicts for the fast loop: variants of `real_data_ablation.py` against a reference, seed
by seed, with the project's paired comparison (breakhis.evaluation.cross_validation.ablation).

Each run wrote its out-of-fold predictions with `--predictions DIR/<name>-s<seed>.csv`; runs with the
same `--seed` test every image in the same fold, so they pair image by image:

    python benchmarks/pair_runs.py DIR --reference rgb --variants haematoxylin grey

`--average NAME=RUN,RUN,...` adds a variant NAME whose probability for each image is the mean of the
named runs' (a seed ensemble, when the runs differ only in `--train-seed`):

    python benchmarks/pair_runs.py DIR --reference s42 --variants t100 t200 x3 --average x3=s42,t100,t200

Prints, per variant, the CNN's pooled ROC AUC difference from the reference with its interval over
patient groups, per seed and over the seeds, whether the lever holds in every seed, and the Spearman
correlation with the colour baseline before and after.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from breakhis.evaluation.cross_validation.ablation import (  # noqa: E402
    Settings,
    ablation_markdown,
    compare_variant,
)
from breakhis.evaluation.cross_validation.pooled import follows_colour  # noqa: E402

MODEL = "custom"


@dataclass(frozen=True)
class FastLoopRun:
    """One seed of the fast loop, as the comparison reads a cross-validation."""

    predictions: dict[str, pd.DataFrame]
    pooled: dict[str, dict[str, Any]]


def load_run(path: Path) -> FastLoopRun:
    return as_run(pd.read_csv(path))


def as_run(rows: pd.DataFrame) -> FastLoopRun:
    colour = rows.assign(probability=rows["colour_baseline"])
    return FastLoopRun(
        {MODEL: rows, "colour_baseline": colour},
        {MODEL: {"colour_spearman": follows_colour(rows, colour)}},
    )


def runs(directory: Path, name: str) -> dict[int, FastLoopRun]:
    found = {
        int(match[1]): load_run(path)
        for path in sorted(directory.glob(f"{name}-s*.csv"))
        if (match := re.fullmatch(rf"{re.escape(name)}-s(\d+)\.csv", path.name))
    }
    if not found:
        raise SystemExit(f"no {directory}/{name}-s<seed>.csv")
    return found


def averaged(members: list[dict[int, FastLoopRun]]) -> dict[int, FastLoopRun]:
    """Per seed the members share, every image's probability averaged over the members."""
    seeds = sorted(set.intersection(*(set(member) for member in members)))
    found = {}
    for seed in seeds:
        tables = [member[seed].predictions[MODEL].set_index("filename") for member in members]
        if any(set(table.index) != set(tables[0].index) for table in tables):
            raise SystemExit(f"seed {seed}: the averaged runs do not hold the same images")
        mean = pd.concat([table["probability"] for table in tables], axis=1).mean(axis=1)
        called = np.where(mean.reindex(tables[0].index) >= 0.5, "malignant", "benign")
        rows = tables[0].assign(probability=mean, predicted=called)
        found[seed] = as_run(rows.reset_index())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument(
        "--average",
        action="append",
        default=[],
        metavar="NAME=RUN,RUN,...",
        help="a variant NAME averaging the named runs' probabilities image by image",
    )
    args = parser.parse_args()
    made = {}
    for spec in args.average:
        name, _, members = spec.partition("=")
        if not name or not members:
            raise SystemExit(f"--average {spec}: expected NAME=RUN,RUN,...")
        made[name] = averaged([runs(args.directory, member) for member in members.split(",")])

    def loaded(name: str) -> dict[int, FastLoopRun]:
        return made[name] if name in made else runs(args.directory, name)

    reference = loaded(args.reference)
    results = {}
    for name in args.variants:
        variant = loaded(name)
        seeds = sorted(set(reference) & set(variant))
        results[name] = compare_variant(
            {s: reference[s] for s in seeds},
            {s: variant[s] for s in seeds},
            Settings(args.resamples, 0.95, 0),
        )
    print(ablation_markdown(args.reference, {name: [name] for name in args.variants}, results, 0.95))


if __name__ == "__main__":
    main()
