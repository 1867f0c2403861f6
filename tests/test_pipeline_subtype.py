"""End to end, the second task: `dvc exp run -S task=subtype` in a temporary git repository, on
tiny params; what it writes, and the binary metrics it derives from the subtype probabilities."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from breakhis.modeling.description import read_description
from breakhis.pipeline.task import MALIGNANT_SUBTYPES, SUBTYPE_CLASSES
from tests.pipeline_repo import TINY, dvc, make_repo, set_args, stage

pytestmark = pytest.mark.slow

# TINY, with three patient folders of each of the eight subtypes (one per split), one image per
# magnification: 48 images
SUBTYPE_RUN = {
    **TINY,
    "task": "subtype",
    "data.synthetic.benign_patients": 12,
    "data.synthetic.malignant_patients": 12,
    "data.synthetic.images_per_magnification": 1,
    "split.group_by": "folder",
    "split.val_size": 0.2,
    "split.test_size": 0.25,
}
MODELS = ("custom", "vgg19", "resnet50", "ensemble", "colour_baseline")


@pytest.fixture(scope="module")
def subtype_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    repo = make_repo(tmp_path_factory.mktemp("subtype"))
    output = dvc("exp", "run", *set_args(SUBTYPE_RUN), cwd=repo)
    return repo, output


def test_the_whole_pipeline_runs_for_the_subtypes(subtype_run: tuple[Path, str]) -> None:
    repo, output = subtype_run
    for name in ("ingest", "split", "augment", "train-custom", "train-vgg19", "train-resnet50", "evaluate"):
        assert f"Running stage '{name}'" in output
    split = json.loads((repo / "metrics/split.json").read_text())
    for name in ("train", "val", "test"):
        assert set(split[name]["patients_by_subtype"]) == set(SUBTYPE_CLASSES), name
    for name in ("custom", "vgg19", "resnet50"):
        description = read_description(repo / "models" / name / "model.keras").model_dump(mode="json")
        assert description["task"] == "subtype" and description["classes"] == list(SUBTYPE_CLASSES)
        assert "8-way softmax" in description["architecture"]
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    assert evaluation["majority_subtype_baseline"]["subtype"] in SUBTYPE_CLASSES
    for name in MODELS:
        subtype = evaluation[name]["subtype"]
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc_ovr"):
            assert 0 <= subtype["image"][key] <= 1, (name, key)
        assert 0 <= subtype["patient"]["accuracy"] <= 1 and subtype["patient"]["patients"] == 8
        assert set(subtype["per_class"]) == set(SUBTYPE_CLASSES)
        assert sum(entry["images"] for entry in subtype["per_class"].values()) == evaluation["test_images"]
        assert subtype["ci"]["subtype_macro_f1"]["low"] <= subtype["ci"]["subtype_macro_f1"]["high"]
        if name != "colour_baseline":
            assert "verdict" in subtype["vs_colour_baseline"]
        assert (repo / "plots/evaluate/subtype_confusion" / f"{name}.csv").exists()
        assert (repo / "plots/evaluate" / f"confusion_subtype_{name}.png").stat().st_size > 1000
    report = (repo / "metrics/report.md").read_text()
    assert "## Subtypes (test split)" in report and "| majority subtype" in report
    card = (repo / "metrics/model_card.md").read_text()
    assert "eight BreakHis tumour subtypes" in card


def test_binary_metrics_are_derived_from_the_subtype_probabilities(subtype_run: tuple[Path, str]) -> None:
    """P(malignant) in the predictions is the sum of the four malignant subtypes' probabilities, and
    every binary metric of evaluate.json is computed on it."""
    repo, _ = subtype_run
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    for name in MODELS:
        rows = pd.read_csv(repo / "plots/evaluate/predictions" / f"{name}.csv")
        p = rows[[f"p_{code}" for code in SUBTYPE_CLASSES]].to_numpy()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        derived = rows[[f"p_{code}" for code in MALIGNANT_SUBTYPES]].sum(axis=1).to_numpy()
        np.testing.assert_allclose(rows["probability"], derived, atol=1e-5)
        assert (rows["predicted_subtype"] == [SUBTYPE_CLASSES[i] for i in p.argmax(axis=1)]).all()
        assert (
            rows["actual"] == np.where(rows["actual_subtype"].isin(MALIGNANT_SUBTYPES), "malignant", "benign")
        ).all()
        targets = (rows["actual"] == "malignant").astype(int)
        entry = evaluation[name]
        assert entry["image"]["roc_auc"] == pytest.approx(skm.roc_auc_score(targets, derived), abs=1e-4)
        called = (derived >= entry["threshold"]).astype(int)
        assert (rows["predicted"] == np.where(called, "malignant", "benign")).all()
        assert entry["image"]["accuracy"] == pytest.approx((called == targets).mean(), abs=1e-6)
        subtype_accuracy = (rows["predicted_subtype"] == rows["actual_subtype"]).mean()
        assert entry["subtype"]["image"]["accuracy"] == pytest.approx(subtype_accuracy, abs=1e-6)


def test_predict_writes_the_subtype_probabilities(subtype_run: tuple[Path, str], tmp_path: Path) -> None:
    repo, _ = subtype_run
    images = tmp_path / "images"
    images.mkdir()
    for source in sorted((repo / "data/ingested/images").glob("*.png"))[:4]:
        shutil.copy(source, images)
    output = stage("commands.predict", str(images), "--out", str(tmp_path / "out.csv"), cwd=repo)
    assert "Traceback" not in output
    rows = pd.read_csv(tmp_path / "out.csv")
    p = rows[[f"p_{code}" for code in SUBTYPE_CLASSES]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (rows["predicted_subtype"] == [SUBTYPE_CLASSES[i] for i in p.argmax(axis=1)]).all()
    derived = rows[[f"p_{code}" for code in MALIGNANT_SUBTYPES]].sum(axis=1)
    np.testing.assert_allclose(rows["ensemble_probability"], derived, atol=1e-5)
    called = np.where(derived >= rows["threshold"], "malignant", "benign")
    assert (rows["predicted_class"] == called).all()


def test_dvc_plots_render_the_subtype_confusion(subtype_run: tuple[Path, str], tmp_path: Path) -> None:
    repo, _ = subtype_run
    dvc("plots", "show", "-o", str(tmp_path / "plots"), cwd=repo)
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "Subtype confusion, soft-vote ensemble" in html and "row-normalised" in html
