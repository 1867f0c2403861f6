"""The pull-request comment: first the headline (metrics/headline.json) against a base revision;
then every model's headline metrics, each difference with a paired interval over the test patients
both share and a verdict (better, worse, within noise: breakhis.evaluation.comparison); all metric
and param changes; the key figures. Not a DVC stage: run it after `dvc repro` in a PR's CI job.

    python -m commands.pr_comment [--base main] [--out pr_comment.md]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from breakhis.evaluation.comparison import comparable_groups, compare_runs, comparison_markdown
from breakhis.evaluation.headline import headline_metrics
from breakhis.evaluation.tables import is_number, number, table
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.experiments import file_at, git, predictions_at
from breakhis.pipeline.files import check_output, write_text_atomically
from breakhis.pipeline.param_types import EVALUATED
from breakhis.pipeline.params import Params
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import EVALUATE_METRICS, HEADLINE_METRICS, PARAMS_FILE, REPORT, predictions_file
from breakhis.pipeline.profiles import flatten
from breakhis.pipeline.stage import run_stage


def dvc(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"dvc {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def headline_at(rev: str | None) -> dict[str, Any] | None:
    """The headline at a commit (None: the workspace), flat: its metrics/headline.json, or the same
    computed from its evaluate.json when the commit predates the file; None without either."""
    for path in (HEADLINE_METRICS, EVALUATE_METRICS):
        text = (path.read_text() if path.is_file() else None) if rev is None else file_at(rev, path)
        if text is not None:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} at {rev or 'the workspace'}: not valid JSON ({exc})") from None
            return flatten(data if path == HEADLINE_METRICS else headline_metrics(data))
    return None


def shown(value: object, *, sign: bool = False) -> str:
    """A headline value: counts as integers, metrics with three decimals."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+d}" if sign else str(value)
    return number(value, sign=sign)


def headline_table(base: str, against_base: bool = True) -> list[str]:
    """The comment's first table: every key of metrics/headline.json in this revision, and (unless
    not `against_base`: the two revisions measure different things) at `base` with the change."""
    new, old = headline_at(None), (headline_at(base) if against_base else None) or {}
    if new is None:
        return [f"No {HEADLINE_METRICS}: run `dvc repro` first.", ""]
    rows = []
    for key, value in new.items():
        before = old.get(key)
        change = value - before if is_number(value) and is_number(before) else None
        arrow = "" if not is_number(change) or change == 0 else (" ▲" if change > 0 else " ▼")
        rows.append([f"`{key}`", shown(before), shown(value), shown(change, sign=True) + arrow])
    return [
        f"### Headline (`{HEADLINE_METRICS}`)",
        "",
        *table(["Metric", f"`{base}`", "this PR", "change"], rows, "lrrr"),
        "",
    ]


def paired_section(base: str, params: Params) -> tuple[list[str], bool]:
    """The paired comparison with the base's committed test predictions, or why there is none; and
    False when not even the unpaired changes compare (the two revisions' tasks differ)."""
    result = git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    if result.returncode != 0:
        raise ValueError(f"--base {base}: not a git revision here (fetch it: `git fetch origin {base}`)")
    base_predictions = predictions_at(result.stdout.strip(), EVALUATED)
    new_predictions = predictions_at(None, EVALUATED)
    if not new_predictions:
        return [f"No test predictions in {predictions_file('<model>')}: run `dvc repro` first.", ""], True
    if not base_predictions:
        return [
            f"`{base}` has no test predictions to pair with: the changes above are not paired.",
            "",
        ], True
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
            return [f"**Not comparable with `{base}`**: {reason}. No metric change is shown.", ""], False
        return [f"**Not comparable with `{base}`**: {reason}. The changes above are not paired.", ""], True
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
    paired, comparable = paired_section(base, params)  # first: it checks that `base` is a revision
    params_diff = dvc("params", "diff", base, "--md").strip() or "No params changed."
    all_metrics = dvc("metrics", "diff", base, "--md", "--precision", "4").strip() or "No metric changed."
    report = (
        REPORT.read_text().split("\n", 2)[2] if REPORT.exists() else "(no metrics/report.md: run `dvc repro`)"
    )
    return "\n".join(
        [
            f"## BreakHis pipeline: this PR against `{base}`",
            "",
            *headline_table(base, against_base=comparable),
            *paired,
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
    parser = command_parser("commands.pr_comment", __doc__)
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
