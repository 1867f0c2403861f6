"""The model card: read from params and whatever metrics the run wrote, intervals when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakhis.evaluation.card.document import model_card, write_model_card
from breakhis.evaluation.card.values import as_interval, lookup, wilson_interval
from breakhis.evaluation.decision import RunDecision, threshold_rule, write_decisions
from breakhis.modeling.description import describe_models
from breakhis.pipeline.files import file_digest
from breakhis.pipeline.param_types import ENSEMBLE, MODEL_NAMES
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import decision_file, model_file
from tests.conftest import described_file

INGEST = {
    "source": "breakhis",
    "images": 7908,
    "patients": 82,
    "patient_groups": 70,
    "duplicates": 1,
    "rejected": 0,
    "by_class": {"benign": 2480, "malignant": 5428},
}
SPLIT = {
    "strategy": "patient",
    "group_by": "root",
    "leaky": False,
    "leak_check": "passed",
    **{
        name: {
            "images": images,
            "patients": patients,
            "patient_groups": patients - 1,
            "images_by_class": {"benign": images // 3, "malignant": images - images // 3},
            "patients_by_class": {"benign": patients // 3, "malignant": patients - patients // 3},
        }
        for name, images, patients in (("train", 5000, 52), ("val", 1300, 14), ("test", 1608, 16))
    },
}


def model_metrics(accuracy: float) -> dict[str, object]:
    return {
        "image": {
            "accuracy": accuracy,
            "balanced_accuracy": accuracy - 0.05,
            "recall": 0.9,
            "specificity": 0.7,
            "roc_auc": 0.91,
        },
        "patient": {"recognition_rate": accuracy - 0.01, "accuracy": 0.875, "patients": 16},
    }


def summary(with_intervals: bool) -> dict[str, object]:
    result: dict[str, object] = {
        "threshold": 0.5,
        "test_images": 1608,
        "majority_baseline": {"image_accuracy": 0.69, "patient_accuracy": 0.69},
        **{
            name: model_metrics(0.8 + i / 100)
            for i, name in enumerate(("custom", "vgg19", "resnet50", "ensemble", "colour_baseline"))
        },
    }
    for name in ("custom", "vgg19", "resnet50", "ensemble", "colour_baseline"):
        result[name]["threshold"] = 0.5 if name != "custom" else 0.35
    result["ensemble_weights"] = {"custom": 0.2, "vgg19": 0.3, "resnet50": 0.5}
    if with_intervals:  # as evaluate writes them
        result["ensemble"]["ci"] = {
            "image_accuracy": {"low": 0.78, "high": 0.86},
            "patient_recognition_rate": {"low": 0.7, "high": 0.9},
        }
        result["resnet50.image.roc_auc_ci"] = [0.85, 0.95]  # other layouts are found too
    return result


def models_folder(folder: Path, params: Params, metrics: dict[str, object]) -> Path:
    """Model files describing themselves and the decisions evaluate wrote for them, from `metrics`."""
    for name in MODEL_NAMES:
        described_file(folder, name, params)
    decision = RunDecision(
        rule=threshold_rule(params.evaluate.threshold),
        thresholds={name: metrics[name]["threshold"] for name in (*MODEL_NAMES, ENSEMBLE)},  # type: ignore[index]
        weights=metrics["ensemble_weights"],  # type: ignore[arg-type]
        temperatures={},
        validation_images=1300,
    )
    chosen = decision.decisions({n: file_digest(model_file(n, folder)) for n in MODEL_NAMES})
    write_decisions(chosen, {name: decision_file(name, folder) for name in (*MODEL_NAMES, ENSEMBLE)})
    return folder


def test_the_card_has_every_section_with_the_run_s_numbers(tmp_path: Path) -> None:
    params = Params.model_validate(
        {
            "data": {"source": "breakhis", "path": "data/raw"},
            "models": {"resnet50": {"weights": "imagenet"}},
            "evaluate": {"threshold": "youden", "ensemble": "val_auc"},
        }
    )
    path = tmp_path / "metrics" / "model_card.md"
    metrics = summary(with_intervals=True)
    models = models_folder(tmp_path / "models", params, metrics)
    write_model_card(path, params, metrics, describe_models(models), INGEST, SPLIT, models_dir=models)
    card = path.read_text()
    for heading in (
        "## Intended use and limits",
        "## Models",
        "## Data and split",
        "## Metrics (test split)",
        "## Known dataset issues",
        "## Versions",
    ):
        assert heading in card
    assert "Not for diagnosis" in card
    assert "| test | 1608 | 536 / 1072 | 16 | 5 / 11 | 15 |" in card
    assert "7908 images of 82 patients (70 patient groups)" in card
    assert "| ensemble | 0.50 | 0.830 (0.780-0.860) |" in card  # image accuracy with its interval
    assert "| custom | 0.35 | 0.800 |" in card  # the threshold chosen on validation
    assert "| colour_baseline | 0.50 | 0.840 |" in card  # every baseline the report shows
    assert "Youden" in card and "weights custom 0.200, vgg19 0.300, resnet50 0.500" in card
    assert "0.820 (0.700-0.900)" in card  # patient recognition rate, interval given as {low, high}
    assert "0.910 (0.850-0.950)" in card  # from a flat key
    assert "95% confidence intervals from 1000 bootstrap resamples of whole test patients" in card
    assert "SOB_M_DC_14-13412" in card and "22549" in card  # duplicates, shared roots
    # each model as its own file describes it, and the decisions stored beside the models
    assert (
        "| resnet50 | resnet50 backbone, global average pooling, dropout 0.3, one sigmoid unit | imagenet |"
        in card
    )
    assert (  # originals and augment's copies told apart
        "| 64x64 patches at scale 0.5 | 24 breakhis images (18 originals, 6 augmented copies), "
        "100X/200X/400X | 2 (2) |" in card
    )
    assert "The thresholds and the ensemble weights were chosen on 1300 validation images" in card
    assert "models/<model>/decision.json" in card
    assert "synthetic" not in card.split("## Known")[0].lower()
    assert "- tensorflow 2." in card and "- keras 3." in card
    assert "source: breakhis" in card  # the params block


def test_without_intervals_or_data_summaries_the_card_says_so(tmp_path: Path) -> None:
    metrics = summary(with_intervals=False)
    models = models_folder(tmp_path, Params(), metrics)
    card = model_card(Params(), metrics, describe_models(models), ingest={}, split={}, models_dir=models)
    assert "| ensemble | 0.50 | 0.830 | 0.780 |" in card
    assert "at least the threshold **0.5**" in card
    # a fixed threshold and the mean: nothing was chosen on validation, and the card says so
    assert "Nothing was chosen on the validation images: the threshold and the equal weights" in card
    assert "were chosen on" not in card
    assert "95% Wilson interval" in card and "16 patients" in card
    assert "These data are synthetic" in card
    assert "**Trained on synthetic images only** (custom, vgg19, resnet50)" in card
    assert "Split summary not found" in card and "Ingest summary not found" in card


def test_missing_metrics_and_models_are_not_fatal(tmp_path: Path) -> None:
    card = model_card(
        Params(),
        {"threshold": 0.5, "custom": {"image": {"accuracy": 0.7}}},
        describe_models(tmp_path),
        ingest={},
        split={},
        models_dir=tmp_path,
    )
    assert "| custom | model file not found" in card and "No decisions in" in card
    assert "| custom | 0.50 | 0.700 | n/a |" in card
    assert "| vgg19 |" not in card.split("## Metrics")[1].split("## Known")[0]


def test_tolerant_lookups() -> None:
    tree = {"a": {"b.c": {"d": 1}}, "x.y": 2}
    assert lookup(tree, "a.b.c.d") == 1 and lookup(tree, "x.y") == 2 and lookup(tree, "a.z") is None
    assert as_interval([0.1, 0.2]) == (0.1, 0.2)
    assert as_interval({"lower": 0.1, "upper": 0.2}) == (0.1, 0.2)
    assert as_interval({"ci": [0.1, 0.2]}) == (0.1, 0.2)
    assert as_interval("0.1-0.2") is None and as_interval([0.1]) is None


def test_wilson_interval() -> None:
    low, high = wilson_interval(7, 7)
    assert high == 1.0 and low == pytest.approx(0.646, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
