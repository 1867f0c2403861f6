"""Fitting one model: early stopping on validation AUC with the best weights kept, DVCLive
curves, and two-phase transfer learning for pretrained backbones.

Phase 1 trains the head on backbone features computed once (augmentation is offline, so the
features of an image never change); phase 2 unfreezes the top backbone layers and fine-tunes the
whole model at a lower learning rate. Both phases log into one DVCLive step counter.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import keras
import numpy as np
import pandas as pd
from dvclive import Live
from dvclive.keras import DVCLiveCallback
from sklearn.utils.class_weight import compute_class_weight

from stages.input_pipeline import image_dataset
from stages.models import build_custom_cnn, build_transfer_model, unfreeze_top
from stages.params import BackboneParams, CustomCNNParams, TrainParams


@dataclass(frozen=True)
class FitSettings:
    """Shared `train.*` values with the model's own overrides applied."""

    image_size: tuple[int, int]
    epochs: int
    batch_size: int
    learning_rate: float


def fit_settings(train: TrainParams, model_name: str) -> FitSettings:
    own = getattr(train, model_name)
    return FitSettings(
        image_size=own.image_size or train.image_size,
        epochs=own.epochs or train.epochs,
        batch_size=own.batch_size or train.batch_size,
        learning_rate=own.learning_rate or train.learning_rate,
    )


def compile_for_training(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ],
    )


def balanced_class_weights(targets: np.ndarray) -> dict[int, float]:
    classes = np.unique(targets)
    weights = compute_class_weight("balanced", classes=classes, y=targets)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


class Trainer:
    """Trains the named model on the train rows, validating on the val rows."""

    def __init__(self, model_name: str, train: TrainParams, seed: int, live: Live) -> None:
        self.name = model_name
        self.params = train
        self.settings = fit_settings(train, model_name)
        self.seed = seed
        self.live = live
        self.verbose = 1 if sys.stderr.isatty() else 2  # one line per epoch in CI logs
        self.epoch = 0  # one epoch counter across both phases

    def dataset(self, rows: pd.DataFrame, *, shuffle: bool, labels: bool = True):
        return image_dataset(
            rows["path"].tolist(),
            rows["target"].to_numpy() if labels else None,
            model_name=self.name,
            image_size=self.settings.image_size,
            batch_size=self.settings.batch_size,
            shuffle_seed=self.seed if shuffle else None,
        )

    def fit(self, model: keras.Model, train_data, val_data, *, epochs: int, class_weight) -> float:
        """Fit for up to `epochs` more epochs; keep the best weights; return the best monitored value.

        Values are returned so that higher is better (the loss is negated)."""
        monitor = self.params.monitor
        mode = "min" if monitor.endswith("loss") else "max"
        stopping = keras.callbacks.EarlyStopping(
            monitor, mode=mode, patience=self.params.patience, restore_best_weights=True
        )
        history = model.fit(
            *train_data,
            validation_data=val_data,
            initial_epoch=self.epoch,
            epochs=self.epoch + epochs,
            class_weight=class_weight,
            callbacks=[DVCLiveCallback(live=self.live), stopping],
            verbose=self.verbose,
        )
        self.epoch += len(history.epoch)
        return -float(stopping.best) if mode == "min" else float(stopping.best)

    def run(self, train_rows: pd.DataFrame, val_rows: pd.DataFrame) -> keras.Model:
        keras.utils.set_random_seed(self.seed)
        self.live.log_params(
            {"model": self.name, **asdict(self.settings), "image_size": list(self.settings.image_size)}
        )
        weights = (
            balanced_class_weights(train_rows["target"].to_numpy()) if self.params.class_weights else None
        )
        train_data = (self.dataset(train_rows, shuffle=True),)
        val_data = self.dataset(val_rows, shuffle=False)
        own = getattr(self.params, self.name)
        if isinstance(own, CustomCNNParams):
            model = build_custom_cnn(self.settings.image_size, own.filters, own.dropout, own.batch_norm)
            compile_for_training(model, self.settings.learning_rate)
            self.fit(model, train_data, val_data, epochs=self.settings.epochs, class_weight=weights)
            return model
        return self.run_transfer(own, train_rows, val_rows, train_data, val_data, weights)

    def run_transfer(
        self, own: BackboneParams, train_rows, val_rows, train_data, val_data, weights
    ) -> keras.Model:
        parts = build_transfer_model(self.name, self.settings.image_size, own.weights, own.dropout)
        if not parts.pretrained:  # nothing to transfer: train every layer from scratch
            compile_for_training(parts.model, self.settings.learning_rate)
            self.fit(parts.model, train_data, val_data, epochs=self.settings.epochs, class_weight=weights)
            return parts.model

        # Phase 1: the head on frozen-backbone features, computed once.
        parts.backbone.trainable = False
        features = {
            name: parts.backbone.predict(self.dataset(rows, shuffle=False, labels=False), verbose=0)
            for name, rows in (("train", train_rows), ("val", val_rows))
        }
        compile_for_training(parts.head, self.settings.learning_rate)
        best = (
            self.fit(
                parts.head,
                (features["train"], train_rows["target"].to_numpy("float32")),
                (features["val"], val_rows["target"].to_numpy("float32")),
                epochs=own.head_epochs,
                class_weight=weights,
            )
            if own.head_epochs
            else -np.inf
        )
        if own.fine_tune_layers == 0:
            return parts.model

        # Phase 2: fine-tune the top of the backbone at a lower rate; keep phase 1 if it was better.
        head_weights = parts.model.get_weights()
        unfreeze_top(parts.backbone, own.fine_tune_layers)
        compile_for_training(parts.model, own.fine_tune_learning_rate)
        if (
            self.fit(parts.model, train_data, val_data, epochs=self.settings.epochs, class_weight=weights)
            < best
        ):
            parts.model.set_weights(head_weights)
        return parts.model
