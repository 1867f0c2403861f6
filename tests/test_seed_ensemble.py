"""Seed ensembles (`models.<model>.seeds`): one saved model averaging its members, Grad-CAM as the
mean of the members' maps, and a killed ensemble that keeps its finished members."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from dvclive import Live

from breakhis.modeling.architectures import build_custom_cnn
from breakhis.modeling.gradcam import GradCam
from breakhis.modeling.resume import ResumeState
from breakhis.modeling.seed_ensemble import combine, member_seeds, members_of
from breakhis.modeling.seed_training import Member, log_training, trained_members

SIZE = (32, 32)


class Killed(Exception):
    """The run stopped from outside."""


def networks(count: int, outputs: int = 1) -> list[keras.Model]:
    """`count` small custom CNNs with different weights."""
    found = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        found.append(build_custom_cnn(SIZE, [4, 4, 4, 4], 0.0, True, outputs))
    return found


def images(count: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, *SIZE, 3)).astype("float32")


def test_the_ensemble_outputs_the_mean_of_its_members_and_saves_as_one_model(tmp_path: Path) -> None:
    members = networks(3)
    model = combine(members, "custom", [7, 8, 9])
    expected = np.mean([np.asarray(member(images())) for member in members], axis=0)
    assert np.allclose(np.asarray(model(images())), expected, atol=1e-6)
    assert model.name == "custom"
    assert [member.name for member in members_of(model)] == ["custom_seed7", "custom_seed8", "custom_seed9"]

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert np.allclose(np.asarray(loaded(images())), expected, atol=1e-6)
    assert len(members_of(loaded)) == 3


def test_a_single_network_is_saved_as_it_is() -> None:
    (network,) = networks(1)
    assert combine([network], "custom", [42]) is network
    assert members_of(network) == [network]
    assert member_seeds(42, 3) == [42, 43, 44]


def test_a_file_whose_networks_are_not_the_ones_described_is_refused(tmp_path: Path) -> None:
    """A model file holds its description: an ensemble saved under a description of one network (a
    file changed after training) is refused when loaded, naming both and the fix."""
    from breakhis.modeling.description import ModelFileError, describe, load_model, save_model
    from tests.conftest import TINY_MODEL_SIZE, tiny_run_params

    params = tiny_run_params()
    keras.utils.set_random_seed(0)
    members = [build_custom_cnn(TINY_MODEL_SIZE, [4, 4, 4, 4], 0.0, True) for _ in range(2)]
    description = describe(
        "custom",
        params,
        data_files=[],
        images=8,
        validation_images=0,
        magnifications=params.data.magnifications,
        training={"epochs_trained": 1, "kept_epoch": -1},
    )
    save_model(combine(members, "custom", [0, 1]), tmp_path / "model.keras", description)
    with pytest.raises(
        ModelFileError,
        match=r"model.keras: the network averages 2 member\(s\), but its description says "
        r"models.custom.seeds 1: the file was changed after training; retrain it",
    ):
        load_model(tmp_path / "model.keras", "custom")


@pytest.mark.parametrize("outputs", [1, 8])
def test_grad_cam_of_an_ensemble_is_the_mean_of_its_members_maps(outputs: int) -> None:
    """Each member explains the class the ensemble predicts (not its own), and the ensemble's map is
    the mean of their raw maps."""
    members = networks(2, outputs)
    model = combine(members, "custom", [0, 1])
    cam = GradCam(model)
    assert cam.layer_name.endswith("mean of 2 seeds")
    maps, probabilities = cam(images(), 0.5, normalise=False)
    output = np.asarray(model(images()))
    assert np.allclose(probabilities, output.reshape(probabilities.shape), atol=1e-6)
    if outputs == 1:
        called = output.reshape(-1) >= 0.5
        own = [GradCam(m)(images(), 0.5, malignant=called, normalise=False)[0] for m in members_of(model)]
    else:
        chosen = output.argmax(axis=-1)
        own = [GradCam(m)(images(), 0.5, subtype=chosen, normalise=False)[0] for m in members_of(model)]
    assert np.allclose(maps, np.mean(own, axis=0), atol=1e-5)
    assert maps.shape == own[0].shape and maps.max() > 0


def test_a_killed_ensemble_keeps_its_finished_members(tmp_path: Path) -> None:
    """Killed while training its third network, the ensemble resumes there: the first two are read
    back, not retrained, and their DVCLive summaries are whole again (the stage starts from an empty
    DVCLive folder, put back from the copy each epoch leaves in the resume state)."""
    trained: list[int] = []
    kill = [44]  # the first run is killed when it starts this member

    def fit(seed: int, live: Live, resume: ResumeState) -> Member:
        if seed in kill:
            kill.remove(seed)
            raise Killed  # as Ctrl-C would (a KeyboardInterrupt would stop the test worker)
        trained.append(seed)
        live.log_metric("eval/auc", 0.5)
        live.next_step()
        shutil.copytree(live.dir, resume.root / "dvclive", dirs_exist_ok=True)  # as each epoch does
        member = Member(seed, networks(1)[0], 3, -1, {"auc": 0.5})
        log_training(live, member)
        return member

    config = {"model": "custom", "seed": 42}
    live_dir, seeds = tmp_path / "live", [42, 43, 44]
    with pytest.raises(Killed), Live(str(live_dir), dvcyaml=None, save_dvc_exp=False) as live:
        trained_members(seeds, live, ResumeState(tmp_path / "resume", config), fit)
    assert trained == [42, 43]

    shutil.rmtree(live_dir)  # the stage's output unit puts the earlier outputs back
    resume = ResumeState(tmp_path / "resume", config)
    resume.restore_live(live_dir)
    with Live(str(live_dir), resume=True, dvcyaml=None, save_dvc_exp=False) as live:
        members = trained_members(seeds, live, resume, fit)
    assert trained == [42, 43, 44]
    assert [member.seed for member in members] == seeds
    assert members[1].validation == {"auc": 0.5} and members[1].epochs_trained == 3
    for folder in (live_dir, live_dir / "seed-43", live_dir / "seed-44"):
        summary = json.loads((folder / "metrics.json").read_text())
        assert summary["epochs_trained"] == 3 and summary["kept"] == {"epoch": -1, "eval": {"auc": 0.5}}
