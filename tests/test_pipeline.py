"""End to end: the real DVC pipeline in a temporary git repository, on tiny params."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

PROJECT_FILES = (
    "stages",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
)
TINY = {
    "data.synthetic.benign_patients": 5,
    "data.synthetic.malignant_patients": 10,
    "data.synthetic.images_per_magnification": 2,
    "data.synthetic.image_size": "[96,128]",
    "data.magnifications": "[100,400]",
    "ingest.image_size": "[64,96]",
    "train.image_size": "[32,32]",
    "train.epochs": 2,
    "train.batch_size": 16,
}
COUNTS = {"tn", "fp", "fn", "tp", "patients"}


def run(args: list[str], cwd: Path) -> str:
    """Run a command with the test's own Python first on PATH; fail with its output."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def make_repo(path: Path) -> Path:
    """A git repository holding a copy of the project, committed."""
    for name in PROJECT_FILES:
        source, target = PROJECT_ROOT / name, path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project"],
    ):
        run(command, path)
    return path


def set_args(overrides: dict[str, object]) -> list[str]:
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    repo = make_repo(tmp_path_factory.mktemp("pipeline"))
    output = dvc("exp", "run", *set_args(TINY), cwd=repo)
    return repo, output


def declared_outputs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            paths.append(repo / (entry if isinstance(entry, str) else next(iter(entry))))
    return paths


def numbers(tree: object, path: str = "") -> dict[str, float]:
    if isinstance(tree, dict):
        return {
            k: v for key, value in tree.items() for k, v in numbers(value, f"{path}.{key}".strip(".")).items()
        }
    return {path: tree} if isinstance(tree, int | float) and not isinstance(tree, bool) else {}


def test_every_stage_ran_and_every_output_exists(pipeline_run: tuple[Path, str]) -> None:
    repo, output = pipeline_run
    for stage in ("ingest", "split", "augment", "train-custom", "train-vgg19", "train-resnet50", "evaluate"):
        assert f"Running stage '{stage}'" in output
    missing = [str(p.relative_to(repo)) for p in declared_outputs(repo) if not p.exists()]
    assert not missing, f"declared outputs not written: {missing}"
    for name in ("custom", "vgg19", "resnet50"):
        assert (repo / "metrics/train" / name / "plots/metrics/eval/auc.tsv").exists()
        assert (repo / "plots/evaluate" / f"confusion_{name}.png").stat().st_size > 1000
    assert (repo / "plots/evaluate/gradcam.png").stat().st_size > 1000
    card = (repo / "metrics/model_card.md").read_text()
    assert "Not for diagnosis" in card and "| ensemble | " in card and "| test | " in card


def test_every_metric_is_a_number_in_unit_range(pipeline_run: tuple[Path, str]) -> None:
    repo, _ = pipeline_run
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    assert set(evaluation) >= {"custom", "vgg19", "resnet50", "ensemble", "majority_baseline", "threshold"}
    values = numbers(evaluation)
    assert "ensemble.patient.recognition_rate" in values
    rates = {k: v for k, v in values.items() if k.rsplit(".", 1)[-1] not in COUNTS and k != "test_images"}
    assert rates and all(0.0 <= v <= 1.0 for v in rates.values()), rates
    ingest = json.loads((repo / "metrics/ingest.json").read_text())
    assert ingest["images"] == 15 * 2 * 2 and ingest["duplicates"] == 0
    split = json.loads((repo / "metrics/split.json").read_text())
    assert split["leak_check"] == "passed"
    assert sum(split[s]["images"] for s in ("train", "val", "test")) == ingest["images"]


def test_augment_balances_train_and_links_sources(pipeline_run: tuple[Path, str]) -> None:
    import pandas as pd

    repo, _ = pipeline_run
    train = pd.read_csv(repo / "data/augmented/train.csv", keep_default_na=False)
    counts = train["label"].value_counts()
    assert counts["benign"] == counts["malignant"]
    new = train[train["source_path"] != ""]
    assert len(new) > 0
    original = pd.read_csv(repo / "data/split/train.csv").set_index("path")
    assert set(new["source_path"]) <= set(original.index)  # derived from train images only
    assert (new["patient"].to_numpy() == original.loc[new["source_path"], "patient"].to_numpy()).all()


def test_second_repro_runs_nothing(pipeline_run: tuple[Path, str]) -> None:
    repo, _ = pipeline_run
    output = dvc("repro", cwd=repo)
    assert "Running stage" not in output
    assert "up to date" in output
