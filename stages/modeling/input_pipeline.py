"""tf.data input: read PNGs in parallel, resize, optionally cache and augment on the fly, apply the
model's own preprocessing, batch and prefetch. Training, evaluation and prediction all read images
through `image_dataset`, so they see exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
CACHE_LIMIT_BYTES = 2 * 1024**3  # `cache: auto` keeps decoded images in memory below this


def should_cache(cache: bool | str, images: int, image_size: tuple[int, int]) -> bool:
    """`cache: auto` caches when the decoded float32 images fit in CACHE_LIMIT_BYTES."""
    if cache == "auto":
        return images * image_size[0] * image_size[1] * 3 * 4 <= CACHE_LIMIT_BYTES
    return bool(cache)


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
    """Decode a PNG file to float RGB in [0, 255] at (height, width)."""
    return resize_image(tf.io.decode_png(tf.io.read_file(path), channels=3), image_size)


def online_augmenter(seed: int) -> keras.Sequential:
    """Random flips and rotations: orientation carries no meaning in histology."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
            keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
        ],
        name="online_augmentation",
    )


def image_dataset(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray | None,
    *,
    model_name: str,
    image_size: tuple[int, int],
    batch_size: int,
    shuffle_seed: int | None = None,
    cache: bool | str = False,
    augment: bool = False,
) -> tf.data.Dataset:
    """Batches of (image, label), or of images alone when labels is None.

    Shuffled (every epoch) when `shuffle_seed` is set; `cache` (True, False or "auto") keeps decoded
    images in memory after the first epoch; `augment` applies random flips/rotations (training only).
    Without the cache, memory is bounded by the batch size and prefetch, not by the dataset.
    """
    items = (list(paths),) if labels is None else (list(paths), np.asarray(labels, dtype="float32"))
    dataset = tf.data.Dataset.from_tensor_slices(items)

    def shuffled(ds: tf.data.Dataset) -> tf.data.Dataset:
        if shuffle_seed is None:
            return ds
        return ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, *label: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return (load_image(path, image_size), *label)

    if should_cache(
        cache, len(paths), image_size
    ):  # decode once, keep decoded images in memory, reshuffle them every epoch
        dataset = shuffled(dataset.map(load, num_parallel_calls=AUTOTUNE).cache())
    else:  # shuffle the (small) paths, decode every epoch
        dataset = shuffled(dataset).map(load, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size)

    augmenter = online_augmenter(shuffle_seed or 0) if augment else None

    def finish(images: tf.Tensor, *label: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, ...]:
        if augmenter is not None:
            images = augmenter(images, training=True)
        images = preprocess(model_name, images)
        return (images, *label) if label else images

    return dataset.map(finish, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
