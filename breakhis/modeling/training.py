"""Fitting one model: early stopping with the best weights kept, a learning-rate schedule, DVCLive
curves, resumable runs, and two-phase transfer learning for pretrained backbones.

Phase 1 trains the head on backbone features computed once (augmentation is offline, so the
features of an image never change; with online augmentation they are recomputed every epoch);
phase 2 unfreezes the top backbone layers and fine-tunes the whole model at a lower learning rate.
Both phases log into one DVCLive step counter.

A diverging run fails (breakhis.modeling.divergence); a killed one resumes from the state it left
(breakhis.modeling.resume).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback
from sklearn.utils.class_weight import compute_class_weight

from breakhis.modeling.architectures import (
    TransferModel,
    build_custom_cnn,
    build_transfer_model,
    unfreeze_top,
)
from breakhis.modeling.divergence import StopOnNonFiniteLoss
from breakhis.modeling.input_pipeline import ColourJitter, inference_dataset, training_dataset
from breakhis.modeling.resume import ResumeState
from breakhis.modeling.runtime import Runtime
from breakhis.modeling.views import ViewParams, training_view
from breakhis.pipeline.paths import snapshot_name
from breakhis.pipeline.train_params import BackboneParams, CustomCNNParams, TrainParams, fit_key, fit_settings


def balanced_class_weights(targets: np.ndarray, classes: int = 2) -> dict[int, float]:
    """n / (k * images of the class) for the k classes present in the training rows; a class absent
    from them gets 1 (it never occurs in training; Keras wants a weight for every class index)."""
    present = np.unique(targets)
    weights = compute_class_weight("balanced", classes=present, y=targets)
    balanced = {int(c): float(w) for c, w in zip(present, weights, strict=True)}
    return {c: balanced.get(c, 1.0) for c in range(max(classes, int(present.max()) + 1))}


class MacroAUC(keras.metrics.AUC):
    """ROC AUC of a softmax over `classes`, one-vs-rest per class and averaged (macro) over the
    classes present, from sparse targets 0..classes-1: the subtype task's `auc`."""

    def __init__(self, classes: int, name: str = "auc", **kwargs: Any) -> None:
        kwargs.pop("multi_label", None)
        kwargs.pop("num_labels", None)
        super().__init__(name=name, multi_label=True, num_labels=classes, **kwargs)
        self.classes = classes

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), self.classes)
        super().update_state(one_hot, y_pred, sample_weight)

    def result(self) -> Any:
        """The mean ROC AUC over the classes with a positive among the rows seen (Keras's own
        average counts an absent class as 0)."""
        ops = keras.ops
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        recall, fp_rate = ops.divide_no_nan(tp, tp + fn), ops.divide_no_nan(fp, fp + tn)
        heights = (recall[:-1] + recall[1:]) / 2
        by_class = ops.sum((fp_rate[:-1] - fp_rate[1:]) * heights, axis=0)
        present = ops.cast(ops.greater(tp[0] + fn[0], 0), by_class.dtype)
        return ops.divide_no_nan(ops.sum(by_class * present), ops.sum(present))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "classes": self.classes}


class SaveSnapshots(keras.callbacks.Callback):
    """Save the weights of `model` (the whole model, also while phase 1 trains its head alone)
    after each of `epochs` (1-based, counted across phases) into `directory`."""

    def __init__(self, model: keras.Model, epochs: set[int], directory: Path) -> None:
        super().__init__()
        self.whole = model
        self.epochs = epochs
        self.directory = directory

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 in self.epochs:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.whole.save_weights(self.directory / snapshot_name(epoch + 1))


@dataclass(frozen=True)
class TrainingInputs:
    """What every fit of one run shares: the rows, their datasets and the class weights."""

    train_rows: pd.DataFrame
    val_rows: pd.DataFrame  # empty with `train.validation: none`
    train: tuple[tf.data.Dataset]
    val: tf.data.Dataset | None  # None: nothing to validate on
    class_weight: dict[int, float] | None


class Trainer:
    """Trains the named model on the train rows, validating on the val rows; with no val rows
    (`train.validation: none`), for exactly its epochs, keeping the last."""

    inputs: TrainingInputs  # set by run()
    whole: keras.Model  # the model being trained (phase 1 may fit its head alone), set by run()

    def __init__(
        self,
        model_name: str,
        train: TrainParams,
        own: CustomCNNParams | BackboneParams,
        seed: int,
        runtime: Runtime,
        live: Live,
        resume: ResumeState,
        outputs: int = 1,
    ) -> None:
        self.name = model_name
        self.outputs = outputs  # 1: P(malignant); more: a softmax over the subtypes (targets 0..outputs-1)
        self.params = train
        self.own = own  # the model's section of `models`
        self.settings = fit_settings(train, own)
        self.seed = seed
        self.runtime = runtime
        self.live = live
        self.resume = resume
        self.batch_size = self.settings.batch_size * runtime.replicas  # global batch: per replica x replicas
        self.verbose = 1 if sys.stderr.isatty() else 2  # one line per epoch in CI logs
        self.epoch = 0  # one epoch counter across both phases
        self.kept_epoch: int | None = None  # the epoch (0-based, across phases) whose weights are kept

    @property
    def view(self) -> ViewParams:
        return training_view(self.params, self.own)

    @property
    def jitter(self) -> ColourJitter:
        return ColourJitter(self.params.hed_jitter, self.params.hsv_jitter, self.params.stain_transfer)

    @property
    def inputs_change_every_epoch(self) -> bool:
        """Random patches or on-line augmentation: frozen-backbone features cannot be reused."""
        return self.params.online_augmentation or self.params.input == "patches" or self.jitter.enabled()

    def training_dataset(self, rows: pd.DataFrame) -> tf.data.Dataset:
        return training_dataset(
            rows["path"].tolist(),
            rows["target"].to_numpy(),
            model_name=self.name,
            image_size=self.settings.image_size,
            batch_size=self.batch_size,
            seed=self.seed,
            cache=self.params.cache,
            augment=self.params.online_augmentation,
            view=self.view,
            jitter=self.jitter,
        )

    def inference_dataset(self, rows: pd.DataFrame, *, labels: bool = True) -> tf.data.Dataset:
        return inference_dataset(
            rows["path"].tolist(),
            rows["target"].to_numpy() if labels else None,
            model_name=self.name,
            image_size=self.settings.image_size,
            batch_size=self.batch_size,
            cache=self.params.cache,
            view=self.view,
        )

    def compile(self, model: keras.Model, learning_rate: float, epochs: int) -> None:
        rate: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
        if self.params.lr_schedule == "cosine":
            samples = len(self.inputs.train_rows) * (
                self.settings.patches_per_image if self.params.input == "patches" else 1
            )
            steps = self.steps_per_epoch(math.ceil(samples / self.batch_size)) * epochs
            rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps))
        # the names `loss`, `accuracy` and `auc` are the task's: train.monitor and dvc.yaml's plots use them
        metrics = (
            [
                keras.metrics.BinaryAccuracy(name="accuracy"),
                keras.metrics.AUC(name="auc"),
                keras.metrics.Precision(name="precision"),
                keras.metrics.Recall(name="recall"),
            ]
            if self.outputs == 1
            else [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), MacroAUC(self.outputs)]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss="binary_crossentropy" if self.outputs == 1 else "sparse_categorical_crossentropy",
            metrics=metrics,
            jit_compile=self.params.jit_compile,
        )

    def steps_per_epoch(self, batches: int) -> int:
        """Batches per epoch: the split's `batches`, or `train.steps_per_epoch` when that is fewer."""
        cap = self.params.steps_per_epoch
        return batches if cap is None else min(cap, batches)

    def fit_arguments(self, train_data: tuple, epochs: int) -> dict[str, Any]:
        """What both kinds of fit pass to `model.fit` besides the data and callbacks: `epochs` more
        epochs from `self.epoch`, the step cap, the class weights; in-memory arrays (phase 1's
        features) batched and shuffled by Keras, a tf.data pipeline as it is (it shuffles itself,
        and Keras warns when told to)."""
        in_memory = not isinstance(train_data[0], tf.data.Dataset)
        return {
            "batch_size": self.batch_size if in_memory else None,
            "shuffle": in_memory,
            "initial_epoch": self.epoch,
            "epochs": self.epoch + epochs,
            "steps_per_epoch": self.steps_cap(train_data[0], in_memory),
            "class_weight": self.inputs.class_weight,
            "verbose": self.verbose,
        }

    def steps_cap(self, data: Any, in_memory: bool) -> int | None:
        """Keras's `steps_per_epoch`: `train.steps_per_epoch` when it is below the batches of an epoch
        (or their number is unknown, as with patches); else None, every batch."""
        cap = self.params.steps_per_epoch
        if cap is None:
            return None
        # phase 1's features are counted; a tf.data pipeline's cardinality is negative when unknown
        batches = math.ceil(len(data) / self.batch_size) if in_memory else int(data.cardinality())
        return cap if batches < 0 or cap < batches else None

    def rate_key(self, phase: str) -> str:
        """The learning rate of a phase with the key that sets it, for error messages."""
        own = self.own
        if phase == "phase2" and isinstance(own, BackboneParams):
            return f"models.{self.name}.fine_tune_learning_rate {own.fine_tune_learning_rate:g}"
        return f"{fit_key(own, self.name, 'learning_rate')} {self.settings.learning_rate:g}"

    def fit(self, model: keras.Model, phase: str, train_data: tuple, val_data: Any, *, epochs: int) -> float:
        """Fit up to `epochs` more epochs, resumable; keep the best weights; return the best
        monitored value, signed so that higher is better. Without `val_data`: exactly `epochs`,
        the last kept, and -inf returned."""
        if val_data is None:
            return self.fit_without_validation(model, phase, train_data, epochs=epochs)
        monitor = self.params.monitor
        mode = "min" if monitor.endswith("loss") else "max"
        # epochs before min_epochs (counted across phases) can neither stop training nor be kept;
        # the last epoch of the phase always counts, so a phase shorter than that keeps its last
        first_counted = min(max(self.epoch, self.params.min_epochs), self.epoch + epochs - 1)
        stopping = keras.callbacks.EarlyStopping(
            monitor,
            mode=mode,
            patience=self.settings.patience,
            restore_best_weights=True,
            start_from_epoch=first_counted,
        )
        callbacks: list[keras.callbacks.Callback] = [
            StopOnNonFiniteLoss(self.name, self.rate_key(phase)),  # first: before anything logs the epoch
            DVCLiveCallback(live=self.live),
            stopping,
        ]
        if self.params.lr_schedule == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor, mode=mode, factor=0.5, patience=max(1, self.settings.patience // 2)
                )
            )
        callbacks += self.resume.callbacks(phase, self.live)  # last: after the epoch is logged
        start = self.epoch
        history = model.fit(
            *train_data,
            validation_data=val_data,
            callbacks=callbacks,
            **self.fit_arguments(train_data, epochs),
        )
        self.epoch = history.epoch[-1] + 1 if history.epoch else start + epochs
        self.kept_epoch = stopping.best_epoch  # restored by EarlyStopping at the end of the fit
        return -float(stopping.best) if mode == "min" else float(stopping.best)

    def fit_without_validation(
        self, model: keras.Model, phase: str, train_data: tuple, *, epochs: int
    ) -> float:
        """Exactly `epochs` more epochs at the scheduled learning rate (constant or cosine); the last
        epoch's weights are the kept ones."""
        callbacks: list[keras.callbacks.Callback] = [
            StopOnNonFiniteLoss(self.name, self.rate_key(phase)),  # first: before anything logs the epoch
            DVCLiveCallback(live=self.live),
            SaveSnapshots(self.whole, set(self.params.snapshot_epochs), self.resume.snapshots),
            *self.resume.callbacks(phase, self.live),  # last: after the epoch is logged
        ]
        start = self.epoch
        model.fit(*train_data, callbacks=callbacks, **self.fit_arguments(train_data, epochs))
        self.epoch = start + epochs
        self.kept_epoch = self.epoch - 1  # 0-based, as EarlyStopping's best_epoch
        return -math.inf

    def run(self, train_rows: pd.DataFrame, val_rows: pd.DataFrame) -> keras.Model:
        self.live.log_params(
            {
                "model": self.name,
                **asdict(self.settings),
                "image_size": list(self.settings.image_size),
                "global_batch_size": self.batch_size,
                # a capped (smoke, timing) run says so; "all": every batch of the split
                "steps_per_epoch": "all"
                if self.params.steps_per_epoch is None
                else self.params.steps_per_epoch,
            }
        )
        self.prepare(train_rows, val_rows)
        own = self.own
        with self.runtime.strategy.scope():
            if isinstance(own, CustomCNNParams):
                model = build_custom_cnn(
                    self.settings.image_size, own.filters, own.dropout, own.batch_norm, self.outputs
                )
                self.whole = model
                return self.train_every_layer(model)
            return self.run_transfer(own)

    def prepare(self, train_rows: pd.DataFrame, val_rows: pd.DataFrame) -> None:
        """The rows' datasets and class weights, which `run` fits on and `validate` scores with."""
        targets = train_rows["target"].to_numpy()
        self.inputs = TrainingInputs(
            train_rows=train_rows,
            val_rows=val_rows,
            train=(self.training_dataset(train_rows),),
            val=self.inference_dataset(val_rows) if len(val_rows) else None,
            class_weight=balanced_class_weights(targets, max(self.outputs, 2))
            if self.params.class_weights
            else None,
        )

    def train_every_layer(self, model: keras.Model) -> keras.Model:
        """One phase: every layer trainable, at the model's learning rate."""
        self.compile(model, self.settings.learning_rate, self.settings.epochs)
        self.fit(model, "train", self.inputs.train, self.inputs.val, epochs=self.settings.epochs)
        return model

    def run_transfer(self, own: BackboneParams) -> keras.Model:
        parts = build_transfer_model(
            self.name, self.settings.image_size, own.weights, own.dropout, self.outputs
        )
        self.whole = parts.model
        if not parts.pretrained:  # nothing to transfer: train every layer from scratch
            return self.train_every_layer(parts.model)

        parts.backbone.trainable = False
        done = self.resume.finished("phase1", parts.model)
        if done is not None:
            print(f"resuming after phase 1 ({done['epochs']} epochs)", file=sys.stderr)
            self.epoch, best, self.kept_epoch = done["epochs"], done["best"], done.get("kept_epoch")
        else:
            best = self.train_head(parts, own)
            record = {"epochs": self.epoch, "best": best, "kept_epoch": self.kept_epoch}
            self.resume.mark_finished("phase1", parts.model, record)
        if own.fine_tune_layers == 0:
            return parts.model

        # Phase 2: fine-tune the top of the backbone at a lower rate; keep phase 1 if it was better.
        phase1_weights, phase1_epoch = parts.model.get_weights(), self.kept_epoch
        unfreeze_top(parts.backbone, own.fine_tune_layers)
        self.compile(parts.model, own.fine_tune_learning_rate, self.settings.epochs)
        if (
            self.fit(parts.model, "phase2", self.inputs.train, self.inputs.val, epochs=self.settings.epochs)
            < best
            and self.inputs.val is not None
        ):
            parts.model.set_weights(phase1_weights)
            self.kept_epoch = phase1_epoch
        return parts.model

    def validate(self, model: keras.Model) -> dict[str, float]:
        """Validation metrics of the model as it is (the kept weights): those its best epoch logged;
        none without validation."""
        if self.inputs.val is None:
            return {}
        if not model.compiled:  # a backbone model whose head alone was trained (on features)
            self.compile(model, self.settings.learning_rate, 1)
        metrics = model.evaluate(self.inputs.val, verbose=0, return_dict=True)
        return {name: float(value) for name, value in metrics.items()}

    def train_head(self, parts: TransferModel, own: BackboneParams) -> float:
        """Phase 1: the head on the frozen backbone; returns the best monitored value."""
        if not own.head_epochs:
            return -math.inf
        if self.inputs_change_every_epoch:  # the backbone's inputs change every epoch: no reuse
            self.compile(parts.model, self.settings.learning_rate, own.head_epochs)
            return self.fit(parts.model, "phase1", self.inputs.train, self.inputs.val, epochs=own.head_epochs)
        rows = {"train": self.inputs.train_rows, "val": self.inputs.val_rows}
        if self.inputs.val is None:
            del rows["val"]
        features = {
            split: parts.backbone.predict(self.inference_dataset(frame, labels=False), verbose=0)
            for split, frame in rows.items()
        }
        targets = {split: frame["target"].to_numpy("float32") for split, frame in rows.items()}
        self.compile(parts.head, self.settings.learning_rate, own.head_epochs)
        return self.fit(
            parts.head,
            "phase1",
            (features["train"], targets["train"]),
            (features["val"], targets["val"]) if "val" in features else None,
            epochs=own.head_epochs,
        )


def inference_copy(model: keras.Model) -> keras.Model:
    """The trained model without its optimizer state, which is two thirds of a saved VGG19 or
    ResNet50: what evaluation, prediction and a model registry need (training resumes from
    models/.resume, never from the saved model)."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy
