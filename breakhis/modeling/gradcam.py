"""Grad-CAM heat maps (Selvaraju et al., 2017): where in the image the evidence for a model's
decision lies, from the gradients of its decision score over its last convolutional block.

Works for the three models of `breakhis.modeling.architectures`: the custom CNN (a flat chain of
layers) and the transfer models, whose keras.applications backbone is a nested functional Model.
Keras 3 cannot take an intermediate output of a nested model from the outer model's graph, so the
forward pass is rebuilt: the outer layers are called in order, and the backbone is replaced by a
model of its own graph that returns (feature map, backbone output). The rebuilt pass is checked
against the model.

The map explains the class the model predicts (the malignant logit's gradient for a malignant
prediction, its negative for a benign one). The layer is the last convolutional block whose map is
at least `MIN_MAP_SIDE` pixels a side: the last block itself at the usual input sizes (VGG19
`block5_conv4`, or `block5_relu4` for VGG19 with BatchNorm from scratch, 14x14, and ResNet50
`conv5_block3_out` 7x7 at 224x224), the block before it when
the last one has collapsed to 1x1 or 2x2 on small inputs (ResNet50 at 64x64).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from breakhis.modeling.description import load_model
from breakhis.modeling.prediction import load_for_model, model_inputs
from breakhis.modeling.seed_ensemble import members_of
from breakhis.modeling.views import WHOLE_FIELD, ViewParams, grid_offsets, mean_over_views, scaled_size
from breakhis.pipeline.figures import grid_figure, save_figure
from breakhis.pipeline.param_types import ENSEMBLE
from breakhis.pipeline.task import BINARY_CLASSES as CLASS_NAMES
from breakhis.pipeline.task import malignant_probability, predicted_subtypes

MIN_MAP_SIDE = 4
OVERLAY_ALPHA = 0.4


def conv_layers(model: keras.Model) -> list[tuple[keras.Model | None, keras.layers.Layer]]:
    """Layers that output a spatial feature map (convolutions and activations), in order, each with
    the nested model of `model.layers` that holds it (None for the model's own layers)."""
    found: list[tuple[keras.Model | None, keras.layers.Layer]] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend((layer, inner) for inner in layer.layers if _is_feature_map(inner))
        elif _is_feature_map(layer):
            found.append((None, layer))
    return found


def _is_feature_map(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D | keras.layers.Activation) and len(layer.output.shape) == 4


def target_layer(
    model: keras.Model, min_side: int = MIN_MAP_SIDE
) -> tuple[keras.Model | None, keras.layers.Layer]:
    """The last convolutional layer whose map is at least `min_side` a side (else the largest map)."""
    candidates = conv_layers(model)
    if not candidates:
        raise ValueError(f"model '{model.name}' has no convolutional layer to explain")
    for parent, layer in reversed(candidates):
        height, width = layer.output.shape[1:3]
        if height >= min_side and width >= min_side:
            return parent, layer
    largest = max(
        range(len(candidates)),
        key=lambda i: (np.prod(candidates[i][1].output.shape[1:3]), i),
    )
    return candidates[largest]


class GradCam:
    """Grad-CAM of one model; call it on a batch of model inputs. A seed ensemble
    (breakhis.modeling.seed_ensemble) is explained by the mean of its members' raw maps, each for the
    class the ensemble predicts."""

    def __init__(self, model: keras.Model, layer: str | None = None, min_side: int = MIN_MAP_SIDE) -> None:
        self.model = model
        members = members_of(model)
        self.members = [GradCam(member, layer, min_side) for member in members] if len(members) > 1 else []
        if self.members:
            return
        if layer is None:
            self.parent, self.layer = target_layer(model, min_side)
        else:
            matches = [(p, found) for p, found in conv_layers(model) if found.name == layer]
            if not matches:
                raise ValueError(f"model '{model.name}' has no convolutional layer named '{layer}'")
            self.parent, self.layer = matches[-1]
        self.inner = (
            keras.Model(self.parent.inputs, [self.layer.output, self.parent.output])
            if self.parent is not None
            else None
        )
        self.chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        self.checked = False

    @property
    def layer_name(self) -> str:
        if self.members:
            return f"{self.members[0].layer_name}, mean of {len(self.members)} seeds"
        return self.layer.name if self.parent is None else f"{self.parent.name}/{self.layer.name}"

    def _forward(self, inputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(feature map of the target layer, logits) by calling the layers in order: the malignant
        logit (n,) of a sigmoid output, the pre-softmax logits (n, k) of a subtype model."""
        hidden, feature_map = inputs, None
        for index, layer in enumerate(self.chain):
            if self.inner is not None and layer is self.parent:
                feature_map, hidden = self.inner(hidden, training=False)
            elif index == len(self.chain) - 1 and _output_dense(layer) is not None:
                # the logit, unsaturated (cast: under mixed precision the features are float16)
                hidden = (
                    keras.ops.matmul(keras.ops.cast(hidden, layer.kernel.dtype), layer.kernel) + layer.bias
                )
            else:
                hidden = layer(hidden, training=False)
                if layer is self.layer:
                    feature_map = hidden
        if _output_dense(self.chain[-1]) == "softmax":
            return feature_map, tf.cast(hidden, tf.float32)
        logit = tf.cast(tf.reshape(hidden, [-1]), tf.float32)
        if _output_dense(self.chain[-1]) is None:  # the model outputs a probability
            clipped = tf.clip_by_value(logit, 1e-7, 1 - 1e-7)
            logit = tf.math.log(clipped) - tf.math.log1p(-clipped)
        return feature_map, logit

    def __call__(
        self,
        inputs: np.ndarray | tf.Tensor,
        threshold: float = 0.5,
        *,
        malignant: np.ndarray | None = None,
        subtype: np.ndarray | None = None,
        normalise: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maps at the feature map's resolution, shape (n, h, w), and the probabilities (n,) of a
        binary model, (n, k) of a subtype model. The map explains the predicted class: the malignant
        logit (sign-flipped below `threshold`, or where `malignant`, one call per input, is False),
        or the logit of the most probable subtype (or of `subtype`, an index per input).
        `normalise`: each map in [0, 1] by its own peak; False: the raw, non-negative maps,
        comparable between the inputs (patches of one field)."""
        inputs = tf.convert_to_tensor(inputs, dtype=tf.float32)
        if self.members:
            return self._mean_of_members(inputs, threshold, malignant, subtype, normalise)
        with tf.GradientTape() as tape:
            tape.watch(inputs)  # frozen layers have no watched variables; the input path is enough
            feature_map, logit = self._forward(inputs)
            if logit.shape.rank == 2:  # a softmax over subtypes
                probability = tf.nn.softmax(logit, axis=-1)
                index = tf.argmax(logit, axis=-1) if subtype is None else tf.constant(subtype, tf.int64)
                chosen = tf.one_hot(index, tf.shape(logit)[-1])
                score = tf.reduce_sum(tf.stop_gradient(chosen) * logit)
            else:
                probability = tf.sigmoid(logit)
                called = probability >= threshold if malignant is None else tf.constant(malignant, tf.bool)
                sign = tf.where(called, 1.0, -1.0)  # explain the predicted class
                score = tf.reduce_sum(sign * logit)
        gradients = tf.cast(tape.gradient(score, feature_map), tf.float32)
        feature_map = tf.cast(feature_map, tf.float32)
        if not self.checked:
            self._check(inputs, probability)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)).numpy()
        return (scaled_to_peak(cam) if normalise else cam), probability.numpy()

    def _mean_of_members(
        self,
        inputs: tf.Tensor,
        threshold: float,
        malignant: np.ndarray | None,
        subtype: np.ndarray | None,
        normalise: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A seed ensemble's maps: the mean of its members' raw maps, each explaining the class the
        ensemble predicts (its output is the mean of theirs)."""
        probability = np.asarray(self.model(inputs, training=False), dtype="float32")
        if probability.shape[-1] == 1:
            probability = probability.reshape(-1)
            malignant = probability >= threshold if malignant is None else malignant
        elif subtype is None:
            subtype = probability.argmax(axis=-1)
        maps = [
            member(inputs, threshold, malignant=malignant, subtype=subtype, normalise=False)[0]
            for member in self.members
        ]
        cam = np.mean(maps, axis=0)
        return (scaled_to_peak(cam) if normalise else cam), probability

    def _check(self, inputs: tf.Tensor, probability: tf.Tensor) -> None:
        expected = np.asarray(self.model(inputs, training=False), dtype="float32")
        if not np.allclose(probability.numpy(), expected.reshape(probability.shape), atol=1e-4):
            raise RuntimeError(
                f"Grad-CAM: the rebuilt forward pass of '{self.model.name}' does not reproduce the model "
                "(is it a chain of layers around at most one nested backbone?)"
            )
        self.checked = True


def _output_dense(layer: keras.layers.Layer) -> str | None:
    """`sigmoid` or `softmax` for a Dense output layer with that activation, else None."""
    if isinstance(layer, keras.layers.Dense):
        for name in ("sigmoid", "softmax"):
            if layer.activation is getattr(keras.activations, name):
                return name
    return None


def output_caption(probability: np.ndarray | float) -> str:
    """A model's output for one image in words: p(malignant), or the predicted subtype and the
    derived p(malignant)."""
    if np.ndim(probability) == 1:
        return (
            f"{predicted_subtypes(np.asarray(probability)[np.newaxis])[0]} "
            f"p={float(np.max(probability)):.2f}, p(malignant)="
            f"{float(malignant_probability(np.asarray(probability)[np.newaxis])[0]):.2f}"
        )
    return f"p(malignant)={float(probability):.2f}"


def scaled_to_peak(maps: np.ndarray) -> np.ndarray:
    """Each non-negative map (n, h, w) divided by its own maximum: in [0, 1] (all zero stays zero)."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (n, h, w) -> (n, height, width), bilinear, kept in [0, 1]."""
    height, width = size
    resized = [
        cv2.resize(m.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) for m in maps
    ]
    return np.clip(np.stack(resized), 0.0, 1.0) if resized else np.zeros((0, height, width), np.float32)


def heatmaps(
    cam: GradCam, model_name: str, images: np.ndarray, threshold: float, view: ViewParams = WHOLE_FIELD
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps at the size of the images (a batch of ingest-sized RGB uint8), and the
    probabilities (per image: the mean over its views, as evaluate computes them).

    Whole field: the model sees the images resized to its input size (non-uniformly if the aspect
    ratios differ); the map is resized back the same way, so it lines up with the image. Patches:
    each grid patch gets its map, put back where the patch lies (overlaps blended, weighted towards
    each patch's centre), then the field's map is scaled to its peak and resized to the image.
    Test-time flips are left out (a map per orientation)."""
    view = replace(view, test_time_flips=False)
    inputs = model_inputs(model_name, cam.model, images, view)
    field = (int(images.shape[1]), int(images.shape[2]))
    if view.input == "field":
        maps, probabilities = cam(inputs, threshold)
        return upsample(maps, field), probabilities
    patch = (int(cam.model.input_shape[1]), int(cam.model.input_shape[2]))
    scaled = scaled_size(field, view.patch_scale)
    offsets = grid_offsets(scaled, patch)
    # every patch explains the field's call, and its map keeps its own strength: the field's map is
    # scaled once, so a patch with little evidence does not glow as brightly as the strongest one
    per_view = np.asarray(cam.model(inputs, training=False), dtype="float32")
    called = None
    if per_view.ndim == 1 or per_view.shape[-1] == 1:
        called = np.repeat(mean_over_views(per_view.reshape(-1), len(offsets)) >= threshold, len(offsets))
    maps, probabilities = cam(inputs, threshold, malignant=called, normalise=False)
    patch_maps = np.stack([cv2.resize(m, patch[::-1], interpolation=cv2.INTER_LINEAR) for m in maps])
    patch_maps = patch_maps.reshape(len(images), len(offsets), *patch)
    # overlapping patches are blended with weights that fall towards each patch's edges, where its
    # map is least reliable (zero padding): no step where one patch ends and the next takes over
    window = np.outer(np.hanning(patch[0] + 2)[1:-1], np.hanning(patch[1] + 2)[1:-1]).astype(np.float32)
    fields = np.zeros((len(images), *scaled), np.float32)
    weights = np.zeros(scaled, np.float32)
    for index, (top, left) in enumerate(offsets):
        fields[:, top : top + patch[0], left : left + patch[1]] += patch_maps[:, index] * window
        weights[top : top + patch[0], left : left + patch[1]] += window
    field_maps = scaled_to_peak(np.maximum(fields / weights, 0.0))
    return upsample(field_maps, field), mean_over_views(probabilities, len(offsets))


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """An RGB uint8 image with the heat map (same height and width, in [0, 1]) blended over it in 'jet'."""
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heat map {heatmap.shape} does not match the image {image.shape[:2]}")
    colours = cv2.applyColorMap((255 * heatmap).round().astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)


# ---- the evaluation grid ------------------------------------------------------------------------


def select_examples(
    targets: np.ndarray, probabilities: np.ndarray, threshold: float, per_group: int = 2
) -> list[tuple[int, str]]:
    """Up to `per_group` images of each (actual class, correct/wrong), the most confident first:
    (row position, caption) pairs in a fixed order."""
    predicted = (probabilities >= threshold).astype(int)
    confidence = np.abs(probabilities - threshold)
    chosen: list[tuple[int, str]] = []
    for actual in (0, 1):
        for outcome, correct in (("correct", True), ("wrong", False)):
            mask = (targets == actual) & ((predicted == actual) == correct)
            index = np.flatnonzero(mask)
            order = index[np.lexsort((index, -confidence[index]))][:per_group]
            chosen.extend((int(i), f"{CLASS_NAMES[actual]}, {outcome}") for i in order)
    return chosen


def write_gradcam_grid(
    model_paths: Mapping[str, Path],
    rows: pd.DataFrame,
    probabilities: np.ndarray,
    thresholds: float | Mapping[str, float],
    out_path: Path,
    *,
    per_group: int = 2,
    image_size: tuple[int, int] | None = None,
    chosen: list[tuple[int, str]] | None = None,
    title: str | None = None,
) -> pd.DataFrame:
    """A PNG grid of Grad-CAM overlays: a few test images of each class, correctly and wrongly
    classified by `probabilities` (the ensemble's), one column per model.

    rows: the split's rows (`path`, `target`, optionally `filename`), positionally aligned with
    `probabilities`. thresholds: one for all, or per model name with the ensemble's under
    "ensemble" (each model's map explains the class it predicts at its own threshold).
    image_size: `ingest.image_size` for raw files; None for ingested images (kept as they are).
    Each model sees the images as its description says. `chosen`: these (row position, caption)
    pairs instead (the report's error gallery), under `title`. Returns the chosen rows with their
    captions."""
    if isinstance(thresholds, Mapping):
        threshold = float(thresholds[ENSEMBLE])
        own = {name: float(thresholds.get(name, threshold)) for name in model_paths}
    else:
        threshold = float(thresholds)
        own = dict.fromkeys(model_paths, threshold)
    targets = rows["target"].to_numpy()
    if chosen is None:
        chosen = select_examples(targets, np.asarray(probabilities), threshold, per_group)
    paths = [str(rows["path"].iloc[i]) for i, _ in chosen]
    images = [load_for_model(path, image_size) for path in paths]
    columns: dict[str, list[tuple[np.ndarray, str]]] = {}
    for name, path in model_paths.items():
        model, description = load_model(path, name)
        view = description.input.view_params(test_time_flips=False)
        cam = GradCam(model)
        cells = []
        for image in images:
            maps, probs = heatmaps(cam, name, image[np.newaxis], own[name], view)
            # an all-zero map: nothing in the image raises the score of the class the model chose
            note = "" if maps[0].max() > 0 else ", no positive evidence"
            cells.append((overlay(image, maps[0]), f"{output_caption(probs[0])}{note}"))
        columns[f"{name} ({cam.layer_name})"] = cells
        del cam, model
        keras.backend.clear_session()

    titles = [
        f"{caption}, ensemble p={probabilities[index]:.2f}\n"
        + (rows["filename"].iloc[index] if "filename" in rows else Path(paths[r]).name)
        for r, (index, caption) in enumerate(chosen)
    ]
    figure = grid_figure(
        images, titles, columns, title or f"Grad-CAM on test images (ensemble threshold {threshold:.2f})"
    )
    save_figure(figure, out_path, photos=True)
    selected = rows.iloc[[i for i, _ in chosen]].copy()
    selected["caption"] = [caption for _, caption in chosen]
    return selected
