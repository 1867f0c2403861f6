"""Real (tiny) training through the train stage: resume after a kill, determinism, two-phase
transfer learning with a weights file, weights errors, a diverging run that fails and saves nothing,
and the multi-device path on CPUs."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests.pipeline_repo import TINY, dvc, environment, make_repo, stage, write_params

pytestmark = pytest.mark.slow

# params.yaml gives the custom CNN its own epochs and patience; cleared, it uses the train.* values set
CUSTOM_USES_SHARED = {"models.custom.epochs": None, "models.custom.patience": None}
# TINY trains 2 epochs: train.min_epochs (3 by default) must not be above any model's epochs. Each
# test sets it with the epochs, since the tests share one repository and its params.yaml.
TINY_MIN_EPOCHS = {"train.min_epochs": 2}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with tiny params and data up to the augment stage."""
    path = make_repo(tmp_path_factory.mktemp("training"))
    write_params(path, {**TINY, **TINY_MIN_EPOCHS})
    dvc("repro", "augment", cwd=path)
    return path


def live_metrics(repo: Path, model: str) -> dict:
    return json.loads((repo / "metrics/train" / model / "metrics.json").read_text())


def live_params(repo: Path, model: str) -> dict:
    import yaml

    return yaml.safe_load((repo / "metrics/train" / model / "params.yaml").read_text())


def test_a_killed_run_resumes_from_its_last_epoch(repo: Path) -> None:
    write_params(
        repo,
        {
            "train.epochs": 30,
            "train.patience": 30,
            **CUSTOM_USES_SHARED,
        },
    )
    backup = repo / "models/.resume/custom/train/training_metadata.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train", "custom"],
        cwd=repo,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if backup.exists() and json.loads(backup.read_text() or "{}").get("epoch", 0) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(backup.read_text())["epoch"]
    assert 3 <= killed_at < 30
    shutil.rmtree(repo / "metrics/train/custom")  # as `dvc repro` does before re-running a stage

    output = stage("stages.train", "custom", cwd=repo)
    assert "resuming an interrupted run" in output
    epochs_run = [
        int(line.split()[1].split("/")[0]) for line in output.splitlines() if line.startswith("Epoch ")
    ]
    assert epochs_run[0] == killed_at + 1  # Keras counts from 1: the first epoch not yet completed
    assert live_metrics(repo, "custom")["epochs_trained"] == 30
    curve = pd.read_csv(repo / "metrics/train/custom/plots/metrics/eval/loss.tsv", sep="\t")
    assert sorted(set(curve["step"])) == list(range(30)), "the curve continues across the interruption"
    assert (repo / "models/custom/model.keras").exists()
    assert not (repo / "models/.resume/custom").exists(), "a finished run must leave no resume state"


SAVED_MODEL_ON_VAL = """
import json, keras, pandas as pd
from breakhis.modeling.input_pipeline import inference_dataset
from breakhis.modeling.views import training_view
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.train_params import fit_settings
params = load_params()
train, custom = params.train, params.models.custom
rows = pd.read_csv("data/split/val.csv")
model = keras.saving.load_model("models/custom/model.keras")
model.compile(loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
data = inference_dataset(rows["path"].tolist(), rows["target"].to_numpy(), model_name="custom",
                     image_size=fit_settings(train, custom).image_size, batch_size=16,
                     view=training_view(train, custom))
print(json.dumps(model.evaluate(data, verbose=0, return_dict=True)))
"""


def test_the_saved_model_is_the_kept_epoch_and_reproduces_its_metrics(repo: Path) -> None:
    """Early stopping (patience 1) ends on an epoch that did not improve: the saved model must be
    the best one, and metrics.json must describe it (`kept`), not only the last epoch."""
    write_params(
        repo,
        {
            "train.epochs": 12,
            "train.patience": 1,
            "train.min_epochs": 0,
            "train.monitor": "val_loss",
            "train.lr_schedule": "constant",
            **CUSTOM_USES_SHARED,
        },
    )
    stage("stages.train", "custom", cwd=repo)
    metrics = live_metrics(repo, "custom")
    assert metrics["epochs_trained"] < 12, "early stopping must have ended the run on a worse epoch"
    curve = pd.read_csv(repo / "metrics/train/custom/plots/metrics/eval/loss.tsv", sep="\t")
    best = curve.loc[curve["loss"].idxmin()]
    last = curve.iloc[-1]
    assert last["loss"] > best["loss"]
    assert metrics["step"] == last["step"] and metrics["eval"]["loss"] == pytest.approx(last["loss"])
    assert metrics["kept"]["epoch"] == best["step"]
    assert metrics["kept"]["eval"]["loss"] == pytest.approx(best["loss"], abs=1e-4)
    saved = json.loads(
        subprocess.run(
            [sys.executable, "-c", SAVED_MODEL_ON_VAL],
            cwd=repo,
            env=environment(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    assert saved["loss"] == pytest.approx(best["loss"], abs=1e-4)
    assert saved["auc"] == pytest.approx(metrics["kept"]["eval"]["auc"], abs=1e-4)


def test_no_epoch_before_min_epochs_stops_training_or_is_kept(repo: Path) -> None:
    write_params(
        repo,
        {
            "train.epochs": 5,
            "train.patience": 1,
            "train.min_epochs": 4,
            "train.monitor": "val_loss",
            "train.lr_schedule": "constant",
            **CUSTOM_USES_SHARED,
        },
    )
    stage("stages.train", "custom", cwd=repo)
    metrics = live_metrics(repo, "custom")
    assert metrics["epochs_trained"] == 5  # patience 1 could not stop epochs 0-3
    assert metrics["kept"]["epoch"] == 4  # the only epoch that counts


def test_same_seed_gives_identical_metrics(repo: Path) -> None:
    write_params(repo, {"train.epochs": 2, "train.min_epochs": 2, "train.deterministic": True})
    runs = []
    for _ in range(2):
        stage("stages.train", "custom", cwd=repo)
        runs.append(live_metrics(repo, "custom"))
    assert runs[0] == runs[1]
    assert runs[0]["eval"]["loss"] > 0


def test_two_phase_transfer_learning_from_a_weights_file(repo: Path) -> None:
    weights = repo / "resnet50-notop.weights.h5"
    script = (
        "from breakhis.modeling.architectures import build_backbone; "
        f"build_backbone('resnet50', (32, 32), 'none').save_weights({str(weights)!r})"
    )
    subprocess.run([sys.executable, "-c", script], cwd=repo, env=environment(), check=True)
    write_params(
        repo,
        {
            "train.epochs": 2,
            "train.min_epochs": 2,
            "train.patience": 5,
            "models.resnet50.weights": str(weights),
            "models.resnet50.head_epochs": 2,
            "models.resnet50.fine_tune_layers": 10,
        },
    )
    stage("stages.train", "resnet50", cwd=repo)
    # both phases log into one step counter: 2 head epochs, then 2 fine-tuning epochs
    curve = pd.read_csv(repo / "metrics/train/resnet50/plots/metrics/eval/loss.tsv", sep="\t")
    assert curve["step"].tolist() == [0, 1, 2, 3]
    assert live_metrics(repo, "resnet50")["epochs_trained"] == 4
    import keras

    model = keras.saving.load_model(repo / "models/resnet50/model.keras", safe_mode=True)
    assert model.output_shape == (None, 1)
    with (
        zipfile.ZipFile(repo / "models/resnet50/model.keras") as saved,
        saved.open("model.weights.h5") as stored,
    ):
        assert "optimizer" not in h5py.File(stored, "r")  # saved for inference: no optimizer state

    # Against the weights file: phase 1 moves no backbone weight; phase 2 moves the ten top
    # convolutions and nothing else (no BatchNorm statistics). The saved model is the better phase.
    from breakhis.modeling.architectures import build_backbone

    reference = build_backbone("resnet50", (32, 32), "none")
    reference.load_weights(weights)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    moved = {
        mine.name
        for mine, theirs in zip(backbone.layers, reference.layers, strict=True)
        if any(
            not np.array_equal(a, b) for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True)
        )
    }
    if live_metrics(repo, "resnet50")["kept"]["epoch"] < 2:
        assert moved == set(), "phase 1 must not change the backbone"
    else:
        top = [layer.name for layer in reference.layers if layer.name.startswith("conv5_")]
        assert moved == {n for n in top if n.endswith("_conv")} and len(moved) == 10, sorted(moved)


def test_a_weights_file_for_another_backbone_is_refused_by_name(repo: Path) -> None:
    weights = repo / "resnet50-notop.weights.h5"
    assert weights.exists(), "made by the two-phase test"
    write_params(repo, {"models.vgg19.weights": str(weights)})
    output = stage("stages.train", "vgg19", cwd=repo, check=False)
    assert "does not fit vgg19" in output and str(weights) in output
    write_params(repo, {"models.vgg19.weights": "missing.weights.h5"})
    output = stage("stages.train", "vgg19", cwd=repo, check=False)
    assert "'missing.weights.h5' does not exist" in output


def test_imagenet_without_network_names_the_fixes(repo: Path, tmp_path: Path) -> None:
    write_params(repo, {"models.vgg19.weights": "imagenet"})
    offline = {
        **environment(),
        "KERAS_HOME": str(tmp_path),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    output = stage("stages.train", "vgg19", cwd=repo, check=False, env=offline)
    assert "could not be downloaded" in output
    assert str(tmp_path / "models") in output and "'none'" in output and "weights file" in output
    assert "Traceback" not in output
    write_params(repo, {"models.vgg19.weights": "none"})


def test_a_diverging_run_fails_naming_the_epoch_and_saves_nothing(repo: Path) -> None:
    """A finite but absurd learning rate: the loss becomes NaN in epoch 1; the stage fails with one
    line naming the epoch and the likely cause, and no model file is written."""
    write_params(
        repo, {"train.epochs": 2, "train.min_epochs": 2, "train.learning_rate": 1e12, **CUSTOM_USES_SHARED}
    )
    saved = repo / "models/custom/model.keras"
    saved.unlink(missing_ok=True)
    output = stage("stages.train", "custom", cwd=repo, check=False)
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    assert re.match(
        r"error: train custom: training diverged: the loss is (nan|inf) in epoch [12] ", errors[0]
    )
    assert (
        "a learning rate too high for this model and data (train.learning_rate 1e+12: try a lower one)"
        in errors[0]
    )
    assert not saved.exists(), "a diverged model must never be saved"
    write_params(repo, {"train.learning_rate": 0.001})


def test_mirrored_over_two_logical_cpus(repo: Path) -> None:
    write_params(
        repo, {"train.epochs": 1, "train.min_epochs": 1, "train.cpu_replicas": 2, "train.batch_size": 8}
    )
    stage("stages.train", "custom", cwd=repo)
    recorded = live_params(repo, "custom")
    assert recorded["replicas"] == 2
    assert recorded["global_batch_size"] == 16
    assert recorded["precision"] == "float32"
    write_params(repo, {"train.cpu_replicas": 0, "train.batch_size": 16})


def test_mixed_precision_keeps_a_float32_output(repo: Path) -> None:
    write_params(repo, {"train.epochs": 1, "train.min_epochs": 1, "train.mixed_precision": True})
    stage("stages.train", "custom", cwd=repo)
    assert live_params(repo, "custom")["precision"] == "mixed_float16"
    import keras

    model = keras.saving.load_model(repo / "models/custom/model.keras", safe_mode=True)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    write_params(repo, {"train.mixed_precision": False})
