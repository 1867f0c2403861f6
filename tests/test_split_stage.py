"""The `split` stage as DVC runs it: its files, its metrics, the leak check after writing, and
byte-for-byte determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from breakhis.data.partition import SplitResult
from breakhis.data.split_report import LeakError
from breakhis.pipeline.params import ParamsError
from breakhis.pipeline.params_file import load_params
from stages import split as split_stage
from tests.conftest import crafted_manifest
from tests.test_partition import with_official_folds

OUTPUTS = (
    "data/split/train.csv",
    "data/split/val.csv",
    "data/split/test.csv",
    "data/split/groups.csv",
    "metrics/split.json",
    "plots/split.png",
)


def project(root: Path, split: dict[str, object], manifest: pd.DataFrame | None = None) -> Path:
    (root / "data/ingested").mkdir(parents=True)
    if manifest is None:
        manifest = with_official_folds(crafted_manifest(benign_patients=20, malignant_patients=30))
    manifest.to_csv(root / "data/ingested/manifest.csv", index=False)
    params: dict[str, object] = {"seed": 3, "split": split}
    if split.get("strategy") == "official":  # the official folds come with the Kaggle source
        params["data"] = {"source": "kaggle"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def run_split(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(root)
    split_stage.main()
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in OUTPUTS}


@pytest.mark.parametrize(
    "split",
    [
        {"strategy": "patient"},
        {"strategy": "patient", "group_by": "folder"},
        {"strategy": "kfold", "folds": 4, "fold": 3},
        {"strategy": "official", "fold": 4},
        {"strategy": "image"},
    ],
)
def test_same_params_same_bytes(
    split: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_split(project(tmp_path / "a", split), monkeypatch)
    second = run_split(project(tmp_path / "b", split), monkeypatch)
    assert first == second
    summary = json.loads((tmp_path / "a/metrics/split.json").read_text())
    assert summary["strategy"] == split["strategy"]
    assert summary["leaky"] is (split["strategy"] == "image")
    total = sum(summary[name]["images"] for name in ("train", "val", "test"))
    dropped = summary.get("train_images_dropped", 0)
    assert total + dropped == len(pd.read_csv(tmp_path / "a/data/ingested/manifest.csv"))


def test_metrics_describe_the_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_split(project(tmp_path, {"strategy": "kfold", "fold": 1}), monkeypatch)
    summary = json.loads((tmp_path / "metrics/split.json").read_text())
    assert summary["leak_check"] == "passed" and summary["leaky"] is False
    assert (summary["folds"], summary["fold"], summary["group_by"]) == (5, 1, "root")
    for name in ("train", "val", "test"):
        rows = pd.read_csv(tmp_path / f"data/split/{name}.csv")
        assert summary[name]["images"] == len(rows)
        assert summary[name]["patients"] == rows["patient"].nunique()
        assert summary[name]["images_by_class"] == rows["label"].value_counts().sort_index().to_dict()
        assert sum(summary[name]["images_by_magnification"].values()) == len(rows)
    groups = pd.read_csv(tmp_path / "data/split/groups.csv")
    assert groups["group"].is_unique  # each group in exactly one split
    assert (tmp_path / "plots/split.png").stat().st_size > 5000


def test_image_strategy_warns_and_is_marked_leaky(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_split(project(tmp_path, {"strategy": "image"}), monkeypatch)
    assert "WARNING" in capsys.readouterr().err
    summary = json.loads((tmp_path / "metrics/split.json").read_text())
    assert summary["leaky"] is True
    assert summary["leak_check"].startswith("not run")
    assert summary["patient_groups_in_train_and_test"] > 0


def test_a_leak_in_the_written_files_fails_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = crafted_manifest()
    leaking = {"train": manifest.iloc[:100], "val": manifest.iloc[100:120], "test": manifest.iloc[115:]}
    monkeypatch.setattr(split_stage, "make_splits", lambda *args: SplitResult(leaking, info={}))
    with pytest.raises(LeakError, match="is in both the"):
        run_split(project(tmp_path, {"strategy": "patient"}, manifest), monkeypatch)
    assert not (tmp_path / "metrics/split.json").exists()


def test_official_on_a_manifest_without_folds_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"split.strategy 'official' needs the manifest column 'fold_1'"):
        run_split(project(tmp_path, {"strategy": "official"}, crafted_manifest()), monkeypatch)


@pytest.mark.parametrize(
    ("split", "named"),
    [
        ({"strategy": "random"}, r"split\.strategy"),
        ({"strategy": "kfold", "folds": 5, "fold": 5}, r"split\.fold must be below split\.folds=5"),
        ({"strategy": "official", "fold": 5}, r"split\.fold must be 0\.\.4"),
        ({"val_size": 0.5, "test_size": 0.5}, r"split\.val_size \+ split\.test_size must be below 1"),
        ({"folds": 1}, r"split\.folds"),
    ],
)
def test_bad_split_params_are_named(split: dict[str, object], named: str, tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"split": split}))
    with pytest.raises(ParamsError, match=named):
        load_params(path)
