"""Seed ensembles (`models.<model>.seeds` above 1): the same network trained with several training
seeds, saved as one model whose output is the mean of theirs.

One model keeps everything downstream as it is: evaluate, predict, calibration and the model card
read one `model.keras` with one output, and Grad-CAM (breakhis.modeling.gradcam) explains the
ensemble with the mean of its members' maps. The members are nested Keras models named
`<model>_seed<seed>`; their outputs meet in an `Average` layer named `SEED_MEAN`.

The members are trained one after another by breakhis.modeling.seed_training.
"""

from __future__ import annotations

import keras

SEED_MEAN = "seed_mean"


def member_seeds(seed: int, seeds: int) -> list[int]:
    """The training seeds of a seed ensemble of `seeds` networks: the training seed, then the next ones."""
    return [seed + offset for offset in range(seeds)]


def combine(members: list[keras.Model], name: str, seeds: list[int]) -> keras.Model:
    """One model named `name` whose output is the mean of the members' outputs (a probability, or a
    softmax over the subtypes). The members are renamed `<name>_seed<seed>` (unique names: Keras
    saves weights by layer path); a single member is returned as it is."""
    if len(members) == 1:
        return members[0]
    renamed = []
    for member, seed in zip(members, seeds, strict=True):
        config = member.get_config()
        config["name"] = f"{name}_seed{seed}"
        copy = keras.Model.from_config(config)
        copy.set_weights(member.get_weights())
        renamed.append(copy)
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    outputs = keras.layers.Average(name=SEED_MEAN, dtype="float32")([member(inputs) for member in renamed])
    return keras.Model(inputs, outputs, name=name)


def members_of(model: keras.Model) -> list[keras.Model]:
    """The networks a seed ensemble averages; a single network alone."""
    if model.layers and model.layers[-1].name == SEED_MEAN:
        return [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return [model]
