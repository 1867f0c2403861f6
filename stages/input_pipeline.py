"""tf.data input: read PNGs in parallel, resize, apply the model's own preprocessing, batch and
prefetch. Training, evaluation and prediction all read images through `image_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def preprocess(model_name: str, images: tf.Tensor) -> tf.Tensor:
    """Float RGB images in [0, 255] -> what the named model expects."""
    if model_name == "vgg19":
        return keras.applications.vgg19.preprocess_input(images)
    if model_name == "resnet50":
        return keras.applications.resnet50.preprocess_input(images)
    return images  # the custom CNN rescales inside the model


def resize_image(images: tf.Tensor | np.ndarray, image_size: tuple[int, int]) -> tf.Tensor:
    """Decoded RGB image(s) -> float images in [0, 255] at the model's input size (predict uses it too)."""
    return tf.image.resize(images, image_size, antialias=True)


def load_image(path: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    return resize_image(tf.io.decode_png(tf.io.read_file(path), channels=3), image_size)


def image_dataset(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray | None,
    *,
    model_name: str,
    image_size: tuple[int, int],
    batch_size: int,
    shuffle_seed: int | None = None,
    cache: bool = False,
) -> tf.data.Dataset:
    """Batches of (image, label), or of images alone when labels is None; shuffled when seeded."""
    items = (list(paths),) if labels is None else (list(paths), np.asarray(labels, dtype="float32"))
    dataset = tf.data.Dataset.from_tensor_slices(items)

    def load(path: tf.Tensor, *label: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        image = preprocess(model_name, load_image(path, image_size))
        return (image, *label) if label else image

    def shuffled(ds: tf.data.Dataset) -> tf.data.Dataset:
        if shuffle_seed is None:
            return ds
        return ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)

    if cache:  # decode once, keep decoded images in memory, reshuffle them every epoch
        dataset = shuffled(dataset.map(load, num_parallel_calls=AUTOTUNE).cache())
    else:  # shuffle the (small) paths, decode every epoch
        dataset = shuffled(dataset).map(load, num_parallel_calls=AUTOTUNE)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
