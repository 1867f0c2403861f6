"""Stage `split`: train/val/test by patient group, stratified by class, checked for leaks.

Writes data/split/{train,val,test}.csv (rows of the ingest manifest) and metrics/split.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from stages.params import load_params
from stages.partition import GROUP_COLUMNS, check_no_leak, describe, split_by_patient
from stages.runner import run_stage, write_json

MANIFEST = Path("data/ingested/manifest.csv")
OUT_DIR = Path("data/split")
METRICS_FILE = Path("metrics/split.json")


def main() -> None:
    params = load_params()
    manifest = pd.read_csv(MANIFEST)
    splits = split_by_patient(
        manifest,
        val_size=params.split.val_size,
        test_size=params.split.test_size,
        group_by=params.split.group_by,
        seed=params.seed,
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        frame.to_csv(OUT_DIR / f"{name}.csv", index=False)

    written = {name: pd.read_csv(OUT_DIR / f"{name}.csv") for name in splits}
    check_no_leak(written, GROUP_COLUMNS[params.split.group_by])
    summary = {
        "strategy": "patient",
        "group_by": params.split.group_by,
        "leaky": False,
        "leak_check": "passed",
    }
    write_json(METRICS_FILE, {**summary, **describe(written)})
    counts = ", ".join(f"{name} {len(frame)}" for name, frame in written.items())
    print(f"split by patient: {counts} images", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
