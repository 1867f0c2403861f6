"""The pull-request comment: the headline metrics of every model against a base revision, each
difference with a paired interval over the test patients both share and a verdict (better, worse,
within noise: stages.evaluation.comparison); all metric and param changes; the key figures. Not a
DVC stage: run it after `dvc repro` in a PR's CI job.

    python -m stages.pr_comment [--base main] [--out pr_comment.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from stages.evaluation.comparison import comparable_groups, compare_runs, comparison_markdown
from stages.evaluation.metrics import ACROSS_RUNS
from stages.evaluation.tables import is_number, number, table
from stages.pipeline.experiments import git, predictions_at
from stages.pipeline.files import check_output, write_text_atomically
from stages.pipeline.params import EVALUATED, Params, load_params
from stages.pipeline.paths import EVALUATE_METRICS, PARAMS_FILE, REPORT, predictions_file
from stages.pipeline.stage import run_stage


def dvc(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"dvc {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def headline_table(diff: dict[str, dict[str, Any]], base: str) -> list[str]:
    """Headline metrics of every model: base value, this revision's value, and the change."""
    changes = diff.get(str(EVALUATE_METRICS), {})
    rows = []
    for model in EVALUATED:
        for metric in ACROSS_RUNS:
            entry = changes.get(f"{model}.{metric.path}")
            if entry is None:
                continue
            change = entry.get("diff")
            arrow = "" if not is_number(change) or change == 0 else (" ▲" if change > 0 else " ▼")
            rows.append(
                [
                    model,
                    metric.path,
                    number(entry.get("old")),
                    number(entry.get("new")),
                    number(change) + arrow,
                ]
            )
    if not rows:
        rows.append(["", "no headline metric changed", "", "", ""])
    return table(["Model", "Metric", f"`{base}`", "this PR", "change"], rows, "llrrr")


def paired_section(base: str, params: Params) -> tuple[list[str], bool]:
    """The paired comparison with the base's committed test predictions and True, or why there is
    none and False (then the plain changes of `dvc metrics diff` are shown, unpaired)."""
    result = git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    if result.returncode != 0:
        raise ValueError(f"--base {base}: not a git revision here (fetch it: `git fetch origin {base}`)")
    base_predictions = predictions_at(result.stdout.strip(), EVALUATED)
    new_predictions = predictions_at(None, EVALUATED)
    if not new_predictions:
        return [f"No test predictions in {predictions_file('<model>')}: run `dvc repro` first.", ""], False
    if not base_predictions:
        return [
            f"`{base}` has no test predictions to pair with: the changes below are not paired.",
            "",
        ], False
    confidence = params.evaluate.confidence
    results = compare_runs(
        base_predictions,
        new_predictions,
        resamples=params.evaluate.bootstrap_resamples,
        confidence=confidence,
        seed=params.seed,
    )
    groups = comparable_groups(results)
    if groups is None:
        reason = next(iter(results.values()))["reason"]
        if "task differs" in reason:  # even unpaired, the metrics would not measure the same thing
            return [f"**Not comparable with `{base}`**: {reason}. No metric change is shown.", ""], True
        return [f"**Not comparable with `{base}`**: {reason}. The changes below are not paired.", ""], False
    lines = [
        *comparison_markdown(results, base, "this PR", confidence),
        "",
        f"Differences with their {confidence:.0%} interval from a paired bootstrap over the {groups} test "
        "patient groups both revisions share. **better** / **worse**: the whole interval is on one "
        "side of zero. The interval covers which patients were tested, not training noise: a retraining "
        "with another seed or on another CPU type moves these metrics too (the README's seed-to-seed "
        'spread, under "Is a difference real?").',
        "",
    ]
    return lines, True


def build_comment(base: str, params: Params) -> str:
    paired, is_paired = paired_section(base, params)
    diff = json.loads(dvc("metrics", "diff", base, "--json") or "{}")
    params_diff = dvc("params", "diff", base, "--md").strip() or "No params changed."
    all_metrics = dvc("metrics", "diff", base, "--md", "--precision", "4").strip() or "No metric changed."
    report = (
        REPORT.read_text().split("\n", 2)[2] if REPORT.exists() else "(no metrics/report.md: run `dvc repro`)"
    )
    return "\n".join(
        [
            f"## BreakHis pipeline: this PR against `{base}`",
            "",
            *(paired if is_paired else [*paired, *headline_table(diff, base), ""]),
            "### Params changed",
            "",
            params_diff,
            "",
            "<details><summary>All metric changes</summary>",
            "",
            all_metrics,
            "",
            "</details>",
            "",
            "### Evaluation of this PR",
            "",
            report.replace("](../plots/", "](plots/"),  # the comment's images are relative to the repo root
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--out", type=Path, help="write the comment here instead of printing it")
    args = parser.parse_args()
    # checked before the git work, which can take a minute
    out = check_output(args.out, "--out", "pr_comment.md") if args.out else None
    comment = build_comment(args.base, load_params() if PARAMS_FILE.exists() else Params())
    if out:
        write_text_atomically(out, comment)
    else:
        print(comment)


if __name__ == "__main__":
    run_stage(main)
