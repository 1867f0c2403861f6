"""metrics/headline.json: ten keys of evaluate.json, written by evaluate, listed first by dvc.yaml
and read first by the pull-request comment."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from breakhis.evaluation.headline import headline_metrics
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import EVALUATE_METRICS, HEADLINE_METRICS
from breakhis.pipeline.profiles import flatten
from commands import pr_comment
from tests.conftest import PROJECT_ROOT

COMMITTED = json.loads((PROJECT_ROOT / EVALUATE_METRICS).read_text())
KEYS = [
    "test_images",
    "roc_auc.custom",
    "roc_auc.vgg19",
    "roc_auc.resnet50",
    "roc_auc.ensemble",
    "roc_auc.colour_baseline",
    "ensemble.image_accuracy",
    "ensemble.balanced_accuracy",
    "ensemble.patient_recognition_rate",
    "ensemble.patient_accuracy",
]


def test_the_headline_is_ten_values_of_evaluate_json() -> None:
    flat = flatten(headline_metrics(COMMITTED))
    assert list(flat) == KEYS
    assert flat["test_images"] == COMMITTED["test_images"]
    for model in ("custom", "vgg19", "resnet50", "ensemble", "colour_baseline"):
        assert flat[f"roc_auc.{model}"] == COMMITTED[model]["image"]["roc_auc"]
    ensemble = COMMITTED["ensemble"]
    assert flat["ensemble.image_accuracy"] == ensemble["image"]["accuracy"]
    assert flat["ensemble.balanced_accuracy"] == ensemble["image"]["balanced_accuracy"]
    assert flat["ensemble.patient_recognition_rate"] == ensemble["patient"]["recognition_rate"]
    assert flat["ensemble.patient_accuracy"] == ensemble["patient"]["accuracy"]


def test_an_undefined_metric_is_null_and_a_missing_entry_is_named() -> None:
    summary = copy.deepcopy(COMMITTED)
    del summary["vgg19"]["image"]["roc_auc"]  # one class only: evaluate.json omits it
    assert headline_metrics(summary)["roc_auc"]["vgg19"] is None
    del summary["colour_baseline"]
    with pytest.raises(ValueError, match=r"metrics/evaluate.json: no `colour_baseline` entry"):
        headline_metrics(summary)


def test_the_committed_headline_is_the_committed_evaluation_s() -> None:
    committed = json.loads((PROJECT_ROOT / HEADLINE_METRICS).read_text())
    assert committed == headline_metrics(COMMITTED)


def test_dvc_yaml_lists_the_headline_first_and_evaluate_writes_it_in_its_output_unit() -> None:
    evaluate = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    metrics = [next(iter(entry)) if isinstance(entry, dict) else entry for entry in evaluate["metrics"]]
    assert metrics[0] == str(HEADLINE_METRICS)
    source = (PROJECT_ROOT / "breakhis" / "modeling" / "evaluation_run.py").read_text()
    unit = source[source.index("outputs = [") : source.index('with output_unit("evaluate"')]
    assert "HEADLINE_METRICS," in unit
    assert "write_json(HEADLINE_METRICS, headline_metrics(summary))" in source


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def changed(summary: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(summary)
    new["ensemble"]["image"]["roc_auc"] += 0.05
    return new


def test_the_pr_comment_leads_with_the_headline_even_against_a_base_without_one(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "metrics").mkdir()
    (project / EVALUATE_METRICS).write_text(json.dumps(COMMITTED))  # the base predates headline.json
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    new = changed(COMMITTED)
    (project / EVALUATE_METRICS).write_text(json.dumps(new))
    (project / HEADLINE_METRICS).write_text(json.dumps(headline_metrics(new)))
    monkeypatch.setattr(pr_comment, "dvc", lambda *args: "")
    monkeypatch.setattr(pr_comment, "paired_section", lambda base, params: (["PAIRED", ""], True))

    comment = pr_comment.build_comment("HEAD", Params())
    lines = comment.splitlines()
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert lines[first_table - 2] == "### Headline (`metrics/headline.json`)"
    assert lines[first_table] == "| Metric | `HEAD` | this PR | change |"
    rows = lines[first_table + 2 : first_table + 2 + len(KEYS)]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == KEYS
    before, after = COMMITTED["ensemble"]["image"]["roc_auc"], new["ensemble"]["image"]["roc_auc"]
    assert f"| `roc_auc.ensemble` | {before:.3f} | {after:.3f} | +0.050 ▲ |" in rows
    assert f"| `test_images` | {COMMITTED['test_images']} | {COMMITTED['test_images']} | +0 |" in rows
    assert comment.index("### Headline") < comment.index("PAIRED")


def test_the_pr_comment_shows_no_change_when_the_revisions_measure_different_things(project: Path) -> None:
    (project / "metrics").mkdir()
    (project / HEADLINE_METRICS).write_text(json.dumps(headline_metrics(COMMITTED)))
    lines = pr_comment.headline_table("main", against_base=False)
    auc = COMMITTED["custom"]["image"]["roc_auc"]
    assert f"| `roc_auc.custom` | n/a | {auc:.3f} | n/a |" in lines
