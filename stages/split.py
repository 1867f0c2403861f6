"""Stage `split`: train/val/test by patient group (strategy from params), checked for leaks.

Writes data/split/{train,val,test}.csv (rows of the ingest manifest, in its order),
data/split/groups.csv (which split every patient group went to), metrics/split.json and
plots/split.png. The manifest is checked as data first (`check_manifest`: one label per patient
and patient group, `target` agreeing with `label`, no empty key, no path listed twice; every
contradiction named with its lines). For every strategy but `image`, the written files are read
back and checked: no patient group and no pixel hash may be in two splits.
"""

from __future__ import annotations

import sys

import pandas as pd

from breakhis.data.manifest_checks import DUPLICATES_REQUIRED, MANIFEST_REQUIRED, check_manifest
from breakhis.data.partition import SPLITS, make_splits
from breakhis.data.patient_groups import GROUP_COLUMNS
from breakhis.data.plots import split_chart
from breakhis.data.split_report import check_no_leak, describe, group_table, leak_summary
from breakhis.pipeline.cli import parse_no_options
from breakhis.pipeline.files import read_table, replaced_folder, write_json
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import DUPLICATES, MANIFEST, SPLIT_DIR, SPLIT_METRICS, SPLIT_PLOT
from breakhis.pipeline.stage import run_stage


def main() -> None:
    params = load_params()
    manifest = read_table(MANIFEST, MANIFEST_REQUIRED, "ingest")
    check_manifest(manifest, MANIFEST)  # one label per patient and group, no empty key, no path twice
    duplicates = read_table(DUPLICATES, DUPLICATES_REQUIRED, "ingest") if DUPLICATES.exists() else None
    train_on_val = params.train.validation == "none"  # then only test must hold every subtype
    result = make_splits(manifest, params.split, params.seed, duplicates, params.task, train_on_val)
    if result.leaky:
        print(
            "WARNING: split.strategy 'image' splits by image: the same patients are in train and test, "
            "so every metric of this run is inflated. Use it only to reproduce image-level figures.",
            file=sys.stderr,
        )

    with replaced_folder(SPLIT_DIR) as staging:  # the previous split stays whole until this succeeds
        for name, frame in result.splits.items():
            frame.to_csv(staging / f"{name}.csv", index=False)
        written = {name: pd.read_csv(staging / f"{name}.csv") for name in SPLITS}
        groups = GROUP_COLUMNS[params.split.group_by]
        if result.leaky:
            leak = {"leak_check": "not run: split by image, leaky by design", **leak_summary(written, groups)}
        else:
            check_no_leak(written, groups, duplicates)  # raises LeakError, naming the group or hash
            leak = {"leak_check": "passed"}
        group_table(written, params.split.group_by, duplicates).to_csv(staging / "groups.csv", index=False)

    summary = {**result.info, **leak, **describe(written)}
    write_json(SPLIT_METRICS, summary)
    split_chart(summary, SPLIT_PLOT)
    counts = ", ".join(f"{name} {len(frame)}" for name, frame in written.items())
    print(f"split ({params.split.strategy}, by {groups}): {counts} images", file=sys.stderr)


if __name__ == "__main__":
    parse_no_options("stages.split", __doc__)  # --help: usage, nothing read or written
    run_stage(main)
