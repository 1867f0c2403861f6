"""`train.validation: none` end to end: every model trains on the train and validation patients for
exactly its epochs, and evaluate chooses nothing on images the models were trained on."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline_repo import TINY, dvc, make_repo, set_args

pytestmark = pytest.mark.slow

NO_VALIDATION = {
    **TINY,
    "train.validation": "none",
    "train.lr_schedule": "cosine",
    "evaluate.members": ["custom", "resnet50"],
    "train.snapshot_epochs": [1, 2],
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_repo(tmp_path_factory.mktemp("no-validation"))
    dvc("exp", "run", *set_args(NO_VALIDATION), cwd=path)
    return path


def description(repo: Path, model: str) -> dict:
    with zipfile.ZipFile(repo / "models" / model / "model.keras") as archive:
        return json.loads(archive.read("breakhis-model.json"))


def test_every_model_trains_on_train_and_val_for_exactly_its_epochs(repo: Path) -> None:
    train = pd.read_csv(repo / "data/augmented/train.csv")
    val = pd.read_csv(repo / "data/split/val.csv")
    assert len(val) > 0
    for model, epochs in (("custom", 3), ("vgg19", 5), ("resnet50", 2)):  # vgg19: its own 5
        described = description(repo, model)
        assert described["training"]["validation"] == "none"
        assert described["training"]["epochs_trained"] == epochs
        assert described["training"]["kept_epoch"] == epochs - 1  # the last, 0-based
        assert described["data"]["images"] == len(train) + len(val)
        assert described["data"]["validation_images"] == 0
        live = json.loads((repo / "metrics/train" / model / "metrics.json").read_text())
        assert "eval" not in live and live["kept"]["epoch"] == epochs - 1  # nothing was validated


def test_snapshots_are_scored_on_test_epoch_by_epoch(repo: Path) -> None:
    test = pd.read_csv(repo / "data/split/test.csv")
    for model, last in (("custom", 3), ("vgg19", 5), ("resnet50", 2)):
        saved = sorted(path.name for path in (repo / "snapshots" / model).iterdir())
        weights = [f"epoch-{epoch:04d}.weights.h5" for epoch in (1, 2)]
        assert saved == [*weights, "index.json"]
        index = json.loads((repo / "snapshots" / model / "index.json").read_text())
        assert index == {"model": model, "snapshots": weights}
        by_epoch = pd.read_csv(repo / "plots/evaluate/epochs" / f"{model}.csv")
        assert sorted(by_epoch["epoch"].unique()) == sorted({1, 2, last})
        for _, rows in by_epoch.groupby("epoch"):
            assert sorted(rows["filename"]) == sorted(test["filename"])
        final = pd.read_csv(repo / "plots/evaluate/predictions" / f"{model}.csv").set_index("filename")
        at_last = by_epoch[by_epoch["epoch"] == last].set_index("filename")["probability"]
        assert np.allclose(at_last, final.loc[at_last.index, "probability"], atol=1e-4)  # the model itself
        first = by_epoch[by_epoch["epoch"] == 1].set_index("filename")["probability"]
        assert not np.allclose(first, at_last.loc[first.index])  # other weights


def test_evaluate_chooses_nothing_on_the_validation_split(repo: Path) -> None:
    summary = json.loads((repo / "metrics/evaluate.json").read_text())
    assert summary["ensemble_weights"] == {"custom": 0.5, "resnet50": 0.5}  # evaluate.members, equal
    for name in ("custom", "vgg19", "resnet50", "ensemble", "colour_baseline"):
        assert summary[name]["threshold"] == 0.5
        assert "val_roc_auc" not in summary[name]
    ensemble = json.loads((repo / "models/ensemble/decision.json").read_text())
    assert ensemble["validation_images"] == 0 and ensemble["threshold_rule"] == "fixed"
    assert set(ensemble["weights"]) == set(ensemble["model_digests"]) == {"custom", "resnet50"}
    card = (repo / "metrics/model_card.md").read_text()
    assert "No validation split (`train.validation: none`)" in card
    assert "Nothing was chosen on these images" in card and "of custom and resnet50" in card
