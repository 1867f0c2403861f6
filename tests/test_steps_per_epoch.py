"""`train.steps_per_epoch` caps every epoch of every phase at that many batches: counted as the
optimizer's steps of a tiny fit, with and without a validation split, on a tf.data pipeline and on
phase 1's in-memory features; a cap above an epoch's batches changes nothing. (Bad values are in
the params catalogue of tests/test_bad_input_params.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from breakhis.pipeline.train_params import CustomCNNParams, TrainParams

ROWS, BATCH = 40, 4  # 10 batches an epoch


def optimizer_steps(tmp_path: Path, cap: int | None, *, validation: bool, in_memory: bool = False) -> int:
    """Batches seen by two epochs of a tiny fit through `Trainer.fit` with the given cap."""
    import keras
    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from dvclive import Live

    from breakhis.modeling.resume import ResumeState
    from breakhis.modeling.runtime import configure_runtime
    from breakhis.modeling.training import Trainer, TrainingInputs

    changes = {} if validation else {"validation": "none", "lr_schedule": "constant"}
    train = TrainParams(epochs=2, min_epochs=1, batch_size=BATCH, steps_per_epoch=cap, **changes)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (ROWS, 8)).astype("float32"), rng.integers(0, 2, (ROWS, 1)).astype("float32")
    data = (x, y) if in_memory else (tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH),)
    val = tf.data.Dataset.from_tensor_slices((x[:8], y[:8])).batch(BATCH) if validation else None
    with Live(str(tmp_path / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        trainer = Trainer(
            "custom",
            train,
            CustomCNNParams(),
            0,
            configure_runtime(train, 0),
            live,
            ResumeState(tmp_path / "resume", {}),
        )
        rows = pd.DataFrame({"target": y[:, 0]})
        trainer.inputs = TrainingInputs(rows, rows.iloc[:0], data, val, None)
        trainer.whole = model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, "sigmoid")])
        trainer.compile(model, 1e-3, train.epochs)
        trainer.fit(model, "train", data, val, epochs=train.epochs)
    return int(model.optimizer.iterations.numpy())


@pytest.mark.parametrize("validation", [True, False], ids=["validation split", "validation none"])
def test_the_cap_limits_the_batches_of_every_epoch(tmp_path: Path, validation: bool) -> None:
    assert optimizer_steps(tmp_path / "capped", 3, validation=validation) == 2 * 3
    assert optimizer_steps(tmp_path / "whole", None, validation=validation) == 2 * ROWS // BATCH


def test_the_cap_limits_phase_1_on_in_memory_features(tmp_path: Path) -> None:
    assert optimizer_steps(tmp_path, 2, validation=True, in_memory=True) == 2 * 2


def test_a_cap_above_the_split_changes_nothing(tmp_path: Path) -> None:
    assert optimizer_steps(tmp_path, 1000, validation=True) == 2 * ROWS // BATCH
