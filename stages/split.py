"""Stage `split`: train/val/test by patient group (strategy from params), checked for leaks.

Writes data/split/{train,val,test}.csv (rows of the ingest manifest, in its order),
data/split/groups.csv (which split every patient group went to), metrics/split.json and
plots/split.png. For every strategy but `image`, the written files are read back and checked:
no patient group and no pixel hash may be in two splits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from stages.data_plots import split_chart
from stages.params import load_params
from stages.partition import (
    GROUP_COLUMNS,
    SPLITS,
    check_no_leak,
    describe,
    group_table,
    leak_summary,
    make_splits,
)
from stages.runner import run_stage, write_json

MANIFEST = Path("data/ingested/manifest.csv")
DUPLICATES = Path("data/ingested/duplicates.csv")  # optional: links dropped pixel twins to kept ones
OUT_DIR = Path("data/split")
METRICS_FILE = Path("metrics/split.json")
PLOT_FILE = Path("plots/split.png")


def main() -> None:
    params = load_params()
    manifest = pd.read_csv(MANIFEST)
    duplicates = pd.read_csv(DUPLICATES) if DUPLICATES.exists() else None
    result = make_splits(manifest, params.split, params.seed, duplicates)
    if result.leaky:
        print(
            "WARNING: split.strategy 'image' splits by image: the same patients are in train and test, "
            "so every metric of this run is inflated. Use it only to reproduce image-level figures.",
            file=sys.stderr,
        )

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, frame in result.splits.items():
        frame.to_csv(OUT_DIR / f"{name}.csv", index=False)
    written = {name: pd.read_csv(OUT_DIR / f"{name}.csv") for name in SPLITS}

    groups = GROUP_COLUMNS[params.split.group_by]
    if result.leaky:
        leak = {"leak_check": "not run: split by image, leaky by design", **leak_summary(written, groups)}
    else:
        check_no_leak(written, groups, duplicates)  # raises LeakError, naming the group or hash
        leak = {"leak_check": "passed"}
    group_table(written, params.split.group_by, duplicates).to_csv(OUT_DIR / "groups.csv", index=False)

    summary = {**result.info, **leak, **describe(written)}
    write_json(METRICS_FILE, summary)
    split_chart(summary, PLOT_FILE)
    counts = ", ".join(f"{name} {len(frame)}" for name, frame in written.items())
    print(f"split ({params.split.strategy}, by {groups}): {counts} images", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
