"""Which backbone layers train in each phase of transfer learning, and that fine-tuning leaves
BatchNorm statistics and the frozen layers alone (real Keras fits on random data, 32x32)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from breakhis.modeling.architectures import build_transfer_model, unfreeze_top


def trainable_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if layer.trainable and layer.trainable_weights]


@pytest.mark.parametrize(
    ("name", "count", "expected"),
    [
        ("vgg19", 4, ["block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4"]),
        ("resnet50", 10, None),  # the ten convolutions of stage conv5
    ],
)
def test_fine_tuning_unfreezes_the_top_layers_that_hold_weights(name: str, count: int, expected) -> None:
    parts = build_transfer_model(name, (32, 32), "none", 0.3)
    parts.backbone.trainable = False  # phase 1
    assert trainable_layers(parts.backbone) == [] and parts.backbone.trainable_weights == []
    assert len(parts.model.trainable_weights) == 2  # the head's kernel and bias only

    unfrozen = unfreeze_top(parts.backbone, count)  # phase 2
    assert trainable_layers(parts.backbone) == unfrozen and len(unfrozen) == count
    if expected is not None:
        assert unfrozen == expected
    else:
        assert all(n.startswith("conv5_") and n.endswith("_conv") for n in unfrozen), unfrozen
    batch_norms = [layer for layer in parts.backbone.layers if isinstance(layer, layers.BatchNormalization)]
    assert not any(layer.trainable for layer in batch_norms)
    assert unfreeze_top(parts.backbone, 0) == [] and trainable_layers(parts.backbone) == []


def test_fine_tuning_moves_only_the_unfrozen_layers_and_no_batchnorm_statistics() -> None:
    keras.utils.set_random_seed(0)
    parts = build_transfer_model("resnet50", (32, 32), "none", 0.0)
    unfrozen = set(unfreeze_top(parts.backbone, 10))
    before = {layer.name: [w.numpy().copy() for w in layer.weights] for layer in parts.backbone.layers}
    parts.model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    parts.model.fit(images, rng.integers(0, 2, 16).astype("float32"), epochs=2, batch_size=8, verbose=0)

    moved = {
        layer.name
        for layer in parts.backbone.layers
        if any(
            not np.array_equal(old, new.numpy())
            for old, new in zip(before[layer.name], layer.weights, strict=True)
        )
    }
    assert moved == unfrozen  # every unfrozen convolution learned; nothing else changed, BatchNorm included
