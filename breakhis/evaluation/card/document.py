"""The model card as a document: its sections in order, and the file (metrics/model_card.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from breakhis.evaluation.card.data import data_section
from breakhis.evaluation.card.limits import intended_use, issues_section
from breakhis.evaluation.card.models import models_section, summary_task
from breakhis.evaluation.card.results import metrics_section
from breakhis.evaluation.card.values import read_json
from breakhis.evaluation.card.versions import versions_section
from breakhis.evaluation.report import subtype_lines
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import INGEST_METRICS, MODELS_DIR, SPLIT_METRICS


def model_card(
    params: Params,
    summary: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any] | str],
    ingest: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
    models_dir: Path = MODELS_DIR,
) -> str:
    """The card's markdown. ingest / split: the summaries (read from metrics/ when None)."""
    ingest = read_json(INGEST_METRICS) if ingest is None else ingest
    split = read_json(SPLIT_METRICS) if split is None else split
    task = summary_task(params, models)
    title = "eight-subtype" if task == "subtype" else "benign/malignant"
    what = (
        "the eight BreakHis tumour subtypes, with benign vs malignant derived from them"
        if task == "subtype"
        else "benign vs malignant"
    )
    lines = [
        f"# Model card: BreakHis {title} classifiers",
        "",
        f"Task: `{task}`. Four classifiers of breast histopathology images ({what}): a custom CNN, "
        "VGG19, ResNet50 and their soft-vote ensemble, trained and tested on patient-disjoint splits. "
        "Generated from this run's params and metrics; do not edit by hand.",
        "",
        *intended_use(task),
        *models_section(params, models, models_dir),
        *data_section(params, ingest, split),
        *metrics_section(params, summary, models_dir),
        *subtype_lines(dict(summary), params.evaluate.confidence),
        *issues_section(params, ingest),
        *versions_section(params),
    ]
    return "\n".join(lines)


def write_model_card(
    path: Path,
    params: Params,
    summary: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any] | str],
    ingest: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
    models_dir: Path = MODELS_DIR,
) -> None:
    """Write the card; ingest / split summaries default to metrics/ingest.json and metrics/split.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_card(params, summary, models, ingest, split, models_dir))
