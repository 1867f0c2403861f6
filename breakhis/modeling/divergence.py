"""Training that diverges fails: a loss that becomes NaN or infinite stops the run at once with an
error naming the epoch and the likely causes (`StopOnNonFiniteLoss`; Keras's TerminateOnNaN would
only stop, silently, and the model would still be saved), and the train stage refuses to save a
model whose weights are not finite (`require_finite_weights`).
"""

from __future__ import annotations

import math
from typing import Any

import keras

from breakhis.modeling.description import non_finite_weights
from breakhis.pipeline.stage import listed


class TrainingDiverged(ValueError):
    """The loss or the weights of a model became NaN or infinite: nothing is saved."""


def likely_causes(rate: str) -> str:
    """`rate`: the learning rate in use, with its key (e.g. "train.learning_rate 0.001")."""
    return (
        f"Likely causes: a learning rate too high for this model and data ({rate}: try a lower one), "
        "or inputs that are not finite (a NaN in the data)"
    )


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise TrainingDiverged as soon as the training loss (after each batch) or the validation loss
    (after each epoch) is NaN or infinite, before the epoch is logged, backed up or kept. First in
    the callback list, so no later callback sees the non-finite values."""

    def __init__(self, model_name: str, rate: str) -> None:
        super().__init__()
        self.model_name = model_name
        self.rate = rate  # e.g. "train.learning_rate 0.001": the rate of this phase, and its key
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.check(logs, "loss", f"after batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.check(logs, "loss", "at its end")
        self.check(logs, "val_loss", "on the validation split")

    def check(self, logs: dict[str, Any] | None, key: str, where: str) -> None:
        value = (logs or {}).get(key)
        if value is None or math.isfinite(float(value)):
            return
        raise TrainingDiverged(
            f"train {self.model_name}: training diverged: the {'validation ' if key == 'val_loss' else ''}"
            f"loss is {float(value)} in epoch {self.epoch + 1} ({where}); nothing was saved. "
            + likely_causes(self.rate)
        )


def require_finite_weights(model: keras.Model, model_name: str, rate: str) -> None:
    """Refuse a trained model with NaN or infinite weights: it must never be saved."""
    broken = non_finite_weights(model)
    if broken:
        raise TrainingDiverged(
            f"train {model_name}: training diverged: {len(broken)} weight tensors hold NaN or infinity "
            f"({listed(broken)}); nothing was saved. " + likely_causes(rate)
        )
