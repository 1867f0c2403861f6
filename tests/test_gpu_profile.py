"""A CPU run of profiles/gpu-imagenet.yaml, shrunk: every key of the profile applied, then only the
sizes and epochs made tiny (32x32, one head epoch, one fine-tuning epoch, each capped at two batches
by `train.steps_per_epoch`) and the ImageNet weights replaced by local weights files of the same
architectures (no download here). Both backbones train their two phases under mixed precision
through the train stage, on the tiny synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from breakhis.pipeline.profiles import load_profile
from tests.conftest import PROJECT_ROOT
from tests.pipeline_repo import TINY, dvc, environment, make_repo, stage, write_params

pytestmark = pytest.mark.slow

SHRUNK = {  # what a CPU can run in a minute; everything else is the profile's
    "train.image_size": [32, 32],
    "train.epochs": 1,
    "train.min_epochs": 1,
    "train.patience": 1,
    "train.batch_size": 16,
    "train.steps_per_epoch": 2,  # the step cap a runner owner's smoke run uses
    "models.custom.epochs": 1,
    "models.vgg19.epochs": 1,
    "models.vgg19.head_epochs": 1,
    "models.resnet50.epochs": 1,
    "models.resnet50.head_epochs": 1,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with the tiny data up to augment, and a weights file for each backbone."""
    path = make_repo(tmp_path_factory.mktemp("gpu-profile"))
    write_params(path, TINY)
    dvc("repro", "augment", cwd=path)
    for name, builder in (("vgg19", "VGG19"), ("resnet50", "ResNet50")):
        weights = path / f"{name}-notop.weights.h5"  # the ImageNet architecture, random weights
        script = (
            f"import keras; keras.applications.{builder}(include_top=False, weights=None, "
            f"input_shape=(32, 32, 3), pooling='avg').save_weights({str(weights)!r})"
        )
        subprocess.run([sys.executable, "-c", script], cwd=path, env=environment(), check=True)
    return path


@pytest.mark.parametrize("name", ["vgg19", "resnet50"])
def test_the_gpu_profile_trains_both_phases_on_a_cpu(name: str, repo: Path) -> None:
    profile = load_profile("gpu-imagenet", PROJECT_ROOT / "profiles")
    assert profile.params[f"models.{name}.weights"] == "imagenet"
    write_params(
        repo,
        {
            **profile.params,
            "data.source": "synthetic",  # the tiny data already ingested; train reads none of data.*
            **SHRUNK,
            f"models.{name}.weights": str(repo / f"{name}-notop.weights.h5"),  # instead of imagenet
        },
    )
    stage("stages.train", name, cwd=repo)
    logged = (repo / "metrics/train" / name / "params.yaml").read_text()
    assert "mixed_float16" in logged  # the profile's mixed precision, on the CPU
    metrics = json.loads((repo / "metrics/train" / name / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2  # one head epoch, then one fine-tuning epoch
    assert "\nsteps_per_epoch: 2\n" in logged  # the cap, logged with the run
