"""A model file is byte-reproducible: the same model and description give the same bytes, so a
re-run of a train stage (a fresh clone's default run) leaves dvc.lock and every file that names the
model's digest unchanged."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from breakhis.modeling.description import (
    DESCRIPTION_MEMBER,
    ModelDescription,
    code_version,
    describe,
    read_description,
    reproducible_archive,
)
from tests.conftest import TINY_INGEST_SIZE, TINY_MODEL_SIZE, tiny_run_params


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_description(name: str = "custom") -> ModelDescription:
    params = tiny_run_params()
    return describe(
        name,
        params,
        data_files=[],
        images=24,
        validation_images=0,
        magnifications=params.data.magnifications,
        training={"epochs_trained": 1, "kept_epoch": -1},
    )


def keras_like_file(path: Path, saved: str, address: int) -> Path:
    """An archive as Keras writes one: members stamped with the current time, its save time inside,
    and an object shared by two layers named by its memory address."""
    policy = {"name": "float32", "shared_object_id": address}
    config = {"layers": [{"name": "a", "dtype": policy}, {"name": "b", "dtype": policy}]}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3", "date_saved": saved}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"\x89HDF" * 100)
    return path


def test_the_archive_holds_no_time(tmp_path: Path) -> None:
    """Two saves of one model, seconds apart, give the same bytes; the members keep Keras's order,
    the description last, Keras's metadata loses only its save time, and a shared object its address."""
    description = tiny_description()
    first = keras_like_file(tmp_path / "first.keras", "2026-01-01@10:00:00", 140352533249168)
    time.sleep(2.1)  # the zip format stores times in 2-second steps
    second = keras_like_file(tmp_path / "second.keras", "2026-01-01@10:00:02", 140352241111504)
    reproducible_archive(first, tmp_path / "first.zip", description)
    reproducible_archive(second, tmp_path / "second.zip", description)
    assert digest(tmp_path / "first.zip") == digest(tmp_path / "second.zip")
    with zipfile.ZipFile(tmp_path / "first.zip") as archive:
        names = archive.namelist()
        metadata = json.loads(archive.read("metadata.json"))
        layers = json.loads(archive.read("config.json"))["layers"]
    assert names == ["metadata.json", "config.json", "model.weights.h5", DESCRIPTION_MEMBER]
    assert metadata == {"keras_version": "3"}
    assert [layer["dtype"] for layer in layers] == [{"name": "float32", "shared_object_id": 1}] * 2
    assert read_description(tmp_path / "first.zip") == description


def test_the_code_version_is_the_same_at_another_commit(tmp_path: Path) -> None:
    """The commit that records a run's outputs, or a fresh clone, runs the same code at another
    commit: the description (inside the model file) must not change with it. It versions the code
    the train stage runs, and only that."""
    files = {
        "stages/train.py": "from breakhis.modeling import training\n",
        "breakhis/modeling/training.py": "def lazy():\n    from breakhis.pipeline.params import x\n",
        "breakhis/pipeline/params.py": "x = 1\n",
        "breakhis/evaluation/tables.py": "y = 1\n",  # evaluate's, not the train stage's
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "code")
    before = code_version(tmp_path)
    git("commit", "-q", "--allow-empty", "-m", "outputs")
    assert code_version(tmp_path) == before
    (tmp_path / "breakhis/evaluation/tables.py").write_text("y = 2\n")
    assert code_version(tmp_path) == before  # code the stage never runs
    (tmp_path / "breakhis/pipeline/params.py").write_text("x = 2\n")
    assert code_version(tmp_path) != before  # the code itself is versioned, lazy imports included


@pytest.mark.slow
def test_training_twice_saves_identical_model_files(tmp_path: Path, synthetic_images: list[Path]) -> None:
    """A tiny CNN trained twice from the same seed, saved as the train stage saves it, seconds apart:
    the two model.keras files are byte-identical."""
    import keras
    import numpy as np
    import tensorflow as tf

    from breakhis.data.dataset import parse_image_name
    from breakhis.modeling.architectures import build_custom_cnn
    from breakhis.modeling.description import save_model
    from breakhis.modeling.prediction import load_for_model, model_inputs

    images = np.stack([load_for_model(p, TINY_INGEST_SIZE) for p in synthetic_images])
    targets = np.array([parse_image_name(p).target for p in synthetic_images], dtype="float32")
    tf.config.experimental.enable_op_determinism()
    files = []
    for run in range(2):
        if run:
            time.sleep(2.1)  # Keras stamps members and metadata with the time (2-second zip steps)
        keras.backend.clear_session()  # layer names count from the start, as in a new process
        keras.utils.set_random_seed(0)
        model = build_custom_cnn(TINY_MODEL_SIZE, [8, 16, 16, 32], 0.2, True)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(
            model_inputs("custom", model, images), targets, epochs=1, batch_size=8, shuffle=False, verbose=0
        )
        files.append(tmp_path / str(run) / "model.keras")
        save_model(model, files[-1], tiny_description())
    assert digest(files[0]) == digest(files[1])
    loaded = keras.saving.load_model(files[0], safe_mode=True)  # the renumbered config loads
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True))


def test_the_params_of_a_model_saved_before_the_models_section_read_in_todays_layout() -> None:
    """A model file saved when the per-model sections were `train.<model>` records them there: read
    back, its params are in today's layout (`models.<model>`), as a newly saved one's."""
    description = tiny_description("vgg19")
    today = description.model_dump(mode="json")
    assert set(today["params"]["models"]) == {"vgg19"}  # its own section only
    assert "vgg19" not in today["params"]["train"]
    old = json.loads(json.dumps(today))
    old["params"]["train"]["vgg19"] = old["params"].pop("models")["vgg19"]
    assert ModelDescription.model_validate(old) == description
