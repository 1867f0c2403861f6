"""The three classifiers: a 4-block CNN from scratch, and VGG19 / ResNet50 backbones from
keras.applications with a small head. Binary (`outputs=1`): one sigmoid unit, P(malignant);
subtype: a softmax over the eight subtypes (`breakhis.pipeline.task`).

Models take images as produced by `breakhis.modeling.input_pipeline.preprocess` for their name, contain no
Lambda layers, and load with `keras.saving.load_model(path, safe_mode=True)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

BACKBONES = {"vgg19": keras.applications.VGG19, "resnet50": keras.applications.ResNet50}
VGG19_BLOCKS = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)  # filters per convolution


class WeightsError(ValueError):
    """The requested backbone weights cannot be used."""


def output_layer(outputs: int) -> layers.Dense:
    """The classifier: one sigmoid unit (P(malignant)) or a softmax over `outputs` classes; float32
    under mixed precision."""
    if outputs == 1:
        return layers.Dense(1, activation="sigmoid", dtype="float32", name="malignant")
    return layers.Dense(outputs, activation="softmax", dtype="float32", name="subtype")


def build_custom_cnn(
    image_size: tuple[int, int], filters: list[int], dropout: float, batch_norm: bool, outputs: int = 1
) -> keras.Model:
    """Four convolution blocks (conv, optional batch norm, ReLU, max-pool), then a dense head."""
    inputs = keras.Input((*image_size, 3), name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    for block, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, name=f"block{block}_conv")(x)
        if batch_norm:
            # momentum 0.9: small datasets give few steps, and 0.99 leaves the moving statistics unconverged
            x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn")(x)
        x = layers.Activation("relu", name=f"block{block}_relu")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, output_layer(outputs)(x), name="custom")


def resolve_weights(weights: str) -> str | None:
    """`none` -> None, `imagenet` -> 'imagenet', anything else must be an existing weights file."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return weights
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(
            f"weights file '{weights}' does not exist (use 'imagenet', 'none' or a path to a weights file)"
        )
    return str(path)


def vgg19_batchnorm(image_size: tuple[int, int]) -> keras.Model:
    """VGG19 with BatchNorm after every convolution (torchvision's vgg19_bn), top removed,
    global-average pooled; layer names as in keras.applications.VGG19. For training from scratch:
    plain VGG19 does not leave its initialisation on a few hundred images (on the synthetic default,
    validation AUC 0.48 after 5 epochs at learning rate 1e-4, a constant output at 1e-3)."""
    inputs = keras.Input((*image_size, 3), name="input_layer")
    x = inputs
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for index, width in enumerate(widths, start=1):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv{index}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{index}")(x)
            x = layers.Activation("relu", name=f"block{block}_relu{index}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, layers.GlobalAveragePooling2D(name="avg_pool")(x), name="vgg19")


def build_backbone(name: str, image_size: tuple[int, int], weights: str) -> keras.Model:
    """A keras.applications backbone without its top, global-average pooled; from scratch
    (`weights: none`), VGG19 gets BatchNorm (`vgg19_batchnorm`)."""
    resolved = resolve_weights(weights)
    if name == "vgg19" and resolved is None:
        return vgg19_batchnorm(image_size)
    try:
        return BACKBONES[name](
            include_top=False, weights=resolved, input_shape=(*image_size, 3), pooling="avg"
        )
    except Exception as exc:  # download errors come as several types (URLError, OSError, Exception)
        if resolved == "imagenet":
            cache = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models"
            raise WeightsError(
                f"models.{name}.weights=imagenet: the ImageNet weights could not be downloaded ({exc}). "
                f"Without network access, put the weights file in the Keras cache ({cache}/), or set "
                f"models.{name}.weights to the path of a local weights file, or to 'none' "
                "to train from scratch."
            ) from exc
        if resolved is not None:
            raise WeightsError(
                f"models.{name}.weights='{weights}': the file does not fit {name} ({exc})"
            ) from exc
        raise


@dataclass
class TransferModel:
    """A backbone with a head; `head` maps pooled backbone features to the probabilities."""

    model: keras.Model
    backbone: keras.Model
    head: keras.Model
    pretrained: bool


def build_transfer_model(
    name: str, image_size: tuple[int, int], weights: str, dropout: float, outputs: int = 1
) -> TransferModel:
    backbone = build_backbone(name, image_size, weights)
    pretrained = weights != "none"
    if not pretrained:
        # From scratch on a small dataset there are few steps; 0.99 leaves BatchNorm's moving
        # statistics far from the data and validation predictions meaningless.
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = 0.9
    dropout_layer = layers.Dropout(dropout, name="dropout")
    classifier = output_layer(outputs)

    inputs = keras.Input((*image_size, 3), name="image")
    # BatchNorm of a pretrained backbone keeps its statistics: in Keras 3 a BatchNormalization layer
    # with trainable=False runs in inference mode (moving statistics, never updated), and phase 1
    # freezes the whole backbone while `unfreeze_top` leaves every BatchNorm frozen. (A
    # `backbone(inputs, training=False)` call would not do it: the outer `fit` overrides it.)
    features = backbone(inputs)
    model = keras.Model(inputs, classifier(dropout_layer(features)), name=name)

    feature_input = keras.Input(backbone.output_shape[1:], name="features")
    head = keras.Model(feature_input, classifier(dropout_layer(feature_input)), name=f"{name}_head")
    return TransferModel(model, backbone, head, pretrained)


def unfreeze_top(backbone: keras.Model, count: int) -> list[str]:
    """Make the top `count` layers that hold weights trainable (convolutions and dense layers;
    pooling, activations and BatchNorm are not counted, and BatchNorm stays frozen), freeze the
    rest; return the names of the unfrozen layers. VGG19: 4 = block5's convolutions; ResNet50:
    10 = the convolutions of stage conv5."""
    weighted = [
        layer
        for layer in backbone.layers
        if layer.weights and not isinstance(layer, layers.BatchNormalization)
    ]
    top = {id(layer) for layer in weighted[len(weighted) - count :]} if count else set()
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = id(layer) in top
    return [layer.name for layer in backbone.layers if id(layer) in top]
