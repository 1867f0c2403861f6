"""How images reach a model: read PNGs in parallel, make the model's views of each image, augment
on the fly (training only), apply the model's own preprocessing, batch and prefetch.

Two ways to view an ingested field (`ViewParams.input`):
- `field`: the whole field resized to the model's input size (one view per image);
- `patches`: the field rescaled by `patch_scale`, then patches of the model's input size at native
  resolution: random ones in training (`patches_per_image` per image and epoch), a fixed grid that
  covers the field in evaluation and prediction, whose probabilities are averaged per image.
Test-time flips (`test_time_flips`) add the mirrored views of every view at inference.

Training, evaluation and prediction all go through `inference_views` / `training_view`, so they see
exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from breakhis.modeling.views import WHOLE_FIELD, ViewParams, grid_offsets, scaled_size
from breakhis.pipeline.param_types import Colour

AUTOTUNE = tf.data.AUTOTUNE
CACHE_LIMIT_BYTES = 2 * 1024**3  # `cache: auto` keeps decoded images in memory below this
SHUFFLE_LIMIT = 8192  # patches held for shuffling (uint8; bounds memory on the full dataset)

# Ruifrok & Johnston stain vectors (optical density per unit stain, RGB rows): H, E, DAB
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = (RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)).astype("float32")
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype("float32")


@dataclass(frozen=True)
class ColourJitter:
    """On-line colour augmentation, the same for every train image of both classes, each epoch."""

    hed: float = 0.0  # max relative scale and shift of the H, E, D stain concentrations (Tellez 2018)
    hsv: float = 0.0  # max hue shift (fraction of the circle) and relative saturation / value change
    transfer: bool = False  # each image takes the stain of another image of its batch (stain_transfer)

    def enabled(self) -> bool:
        return self.hed > 0 or self.hsv > 0 or self.transfer


NO_JITTER = ColourJitter()


def should_cache(
    cache: bool | str, images: int, image_size: tuple[int, int], bytes_per_value: int = 4
) -> bool:
    """`cache: auto` caches when the decoded images fit in CACHE_LIMIT_BYTES."""
    if cache == "auto":
        return images * image_size[0] * image_size[1] * 3 * bytes_per_value <= CACHE_LIMIT_BYTES
    return bool(cache)


def preprocess(model_name: str, images: tf.Tensor, colour: Colour = "rgb") -> tf.Tensor:
    """Float RGB images in [0, 255] -> what the named model expects (`stain_free` first)."""
    images = stain_free(images, colour)
    if model_name == "vgg19":
        return keras.applications.vgg19.preprocess_input(images)
    if model_name == "resnet50":
        return keras.applications.resnet50.preprocess_input(images)
    return images  # the custom CNN rescales inside the model


def resize_image(images: tf.Tensor | np.ndarray, image_size: tuple[int, int]) -> tf.Tensor:
    """Decoded RGB image(s) -> float images in [0, 255] of `image_size` (antialiased)."""
    return tf.image.resize(images, image_size, antialias=True)


def inference_views(images: tf.Tensor, input_size: tuple[int, int], view: ViewParams) -> tf.Tensor:
    """A batch of ingested fields (n, H, W, 3), uint8 or float in [0, 255] -> float views
    (n * views_per_image, h, w, 3), image by image: the field resized, or the grid of patches;
    with test-time flips each view is followed by its left-right, up-down and double mirror."""
    images = tf.cast(images, tf.float32)
    field = (int(images.shape[1]), int(images.shape[2]))
    if view.input == "field":
        views = resize_image(images, input_size)[:, tf.newaxis]
    else:
        scaled = scaled_size(field, view.patch_scale)
        if scaled != field:
            images = resize_image(images, scaled)
        height, width = input_size
        patches = [
            images[:, top : top + height, left : left + width]
            for top, left in grid_offsets(scaled, input_size)
        ]
        views = tf.stack(patches, axis=1)
    if view.test_time_flips:
        views = tf.stack(
            [views, tf.reverse(views, [3]), tf.reverse(views, [2]), tf.reverse(views, [2, 3])], axis=2
        )
    return tf.reshape(views, (-1, *input_size, 3))


def stain_transfer(images: tf.Tensor) -> tf.Tensor:
    """Each float image in [0, 255] of the batch takes the stain of another one, drawn at random:
    the mean and spread of its haematoxylin and eosin concentrations (colour deconvolution,
    Ruifrok & Johnston) become the other image's, its tissue stays its own (Reinhard's statistics
    matching, in stain space). A batch mixes patients and classes, so a slide's stain stops telling
    the class."""
    density = -tf.math.log((images + 1.0) / 256.0)
    stains = tf.einsum("...c,cd->...d", density, HED_FROM_RGB)
    mean = tf.reduce_mean(stains, axis=(1, 2), keepdims=True)
    spread = tf.math.reduce_std(stains, axis=(1, 2), keepdims=True) + 1e-3
    donor = tf.random.shuffle(tf.range(tf.shape(images)[0]))
    stains = (stains - mean) / spread * tf.gather(spread, donor) + tf.gather(mean, donor)
    density = tf.einsum("...d,dc->...c", stains, RGB_FROM_HED)
    return tf.clip_by_value(256.0 * tf.exp(-density) - 1.0, 0.0, 255.0)


def colour_jitter(images: tf.Tensor, jitter: ColourJitter) -> tf.Tensor:
    """Stain transfer within the batch, then random H&E stain (concentration scale and shift) and HSV
    perturbation of float images in [0, 255], one draw per image."""
    if jitter.transfer:
        images = stain_transfer(images)
    if jitter.hed > 0:
        density = -tf.math.log((images + 1.0) / 256.0)
        stains = tf.einsum("...c,cd->...d", density, HED_FROM_RGB)
        shape = (tf.shape(images)[0], 1, 1, 3)
        alpha = tf.random.uniform(shape, 1 - jitter.hed, 1 + jitter.hed)
        beta = tf.random.uniform(shape, -jitter.hed, jitter.hed)
        density = tf.einsum("...d,dc->...c", stains * alpha + beta, RGB_FROM_HED)
        images = tf.clip_by_value(256.0 * tf.exp(-density) - 1.0, 0.0, 255.0)
    if jitter.hsv > 0:
        hsv = tf.image.rgb_to_hsv(images / 255.0)
        per_image = (tf.shape(images)[0], 1, 1)
        hue = tf.math.floormod(hsv[..., 0] + tf.random.uniform(per_image, -jitter.hsv, jitter.hsv), 1.0)
        saturation = hsv[..., 1] * (1 + tf.random.uniform(per_image, -jitter.hsv, jitter.hsv))
        value = hsv[..., 2] * (1 + tf.random.uniform(per_image, -jitter.hsv, jitter.hsv))
        hsv = tf.clip_by_value(tf.stack([hue, saturation, value], axis=-1), 0.0, 1.0)
        images = tf.image.hsv_to_rgb(hsv) * 255.0
    return images


def stain_free(images: tf.Tensor, colour: Colour) -> tf.Tensor:
    """Float RGB images in [0, 255] -> what a model of `train.colour` sees, still 3 channels in
    [0, 255]: the images (rgb); their luminance (grey); or their haematoxylin concentration from
    colour deconvolution (Ruifrok & Johnston), as the grey level a slide stained with haematoxylin
    alone would have: 255 where there is none, darker as there is more (nuclei). Grey and
    haematoxylin carry no stain colour for a model to lean on."""
    if colour == "rgb":
        return images
    if colour == "grey":
        level = tf.image.rgb_to_grayscale(images)
    else:
        density = -tf.math.log((images + 1.0) / 256.0)
        haematoxylin = tf.maximum(tf.einsum("...c,c->...", density, HED_FROM_RGB[:, 0]), 0.0)
        level = tf.clip_by_value(256.0 * tf.exp(-haematoxylin) - 1.0, 0.0, 255.0)[..., tf.newaxis]
    return tf.repeat(level, 3, axis=-1)


def geometric_augmenter(seed: int) -> keras.Sequential:
    """Random flips and rotations: orientation carries no meaning in histology."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
            keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
        ],
        name="online_augmentation",
    )


def decode(path: tf.Tensor) -> tf.Tensor:
    """A PNG file -> uint8 RGB."""
    return tf.io.decode_png(tf.io.read_file(path), channels=3)


def field_size(path: str) -> tuple[int, int]:
    """(height, width) of an ingested image (ingest writes them all at one size)."""
    shape = decode(tf.constant(path)).shape
    return int(shape[0]), int(shape[1])


def load_image(path: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Decode a PNG file to float RGB in [0, 255] at (height, width)."""
    return resize_image(decode(path), image_size)


def training_dataset(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    model_name: str,
    image_size: tuple[int, int],
    batch_size: int,
    seed: int,
    cache: bool | str = False,
    augment: bool = False,
    view: ViewParams = WHOLE_FIELD,
    jitter: ColourJitter = NO_JITTER,
) -> tf.data.Dataset:
    """Batches of (view, label) for fitting: shuffled every epoch (from `seed`); fields resized, or
    `view.patches_per_image` random patches per image; `augment` adds random flips/rotations and
    `jitter` colour changes. `cache` (True, False or "auto") keeps decoded images in memory after the
    first epoch; without it, memory is bounded by the batch size and prefetch, not by the dataset."""
    return _image_dataset(
        paths,
        labels,
        model_name,
        image_size,
        batch_size,
        cache,
        view,
        training=True,
        seed=seed,
        augment=augment,
        jitter=jitter,
    )


def inference_dataset(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    model_name: str,
    image_size: tuple[int, int],
    batch_size: int,
    cache: bool | str = False,
    view: ViewParams = WHOLE_FIELD,
) -> tf.data.Dataset:
    """Every image's inference views in image order (`views.views_per_image` each), batched, with the
    image's label or views alone when labels is None: `mean_over_views` of the predictions gives one
    probability per image. Nothing random: validation, evaluation, frozen-backbone features."""
    return _image_dataset(paths, labels, model_name, image_size, batch_size, cache, view, training=False)


def _image_dataset(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray | None,
    model_name: str,
    image_size: tuple[int, int],
    batch_size: int,
    cache: bool | str,
    view: ViewParams,
    *,
    training: bool,
    seed: int = 0,
    augment: bool = False,
    jitter: ColourJitter = NO_JITTER,
) -> tf.data.Dataset:
    shuffle_seed = seed
    items = (list(paths),) if labels is None else (list(paths), np.asarray(labels, dtype="float32"))
    dataset = tf.data.Dataset.from_tensor_slices(items)
    field_mode = view.input == "field"

    # fields are resized on load; for patches, fields keep their size (ingest wrote them all alike)
    decoded = image_size if field_mode else field_size(paths[0])

    def load(path: tf.Tensor, *label: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return (
            load_image(path, image_size) if field_mode else tf.ensure_shape(decode(path), (*decoded, 3)),
            *label,
        )

    in_memory = should_cache(cache, len(paths), decoded, 4 if field_mode else 1)
    if in_memory:  # decode once, keep decoded images in memory, reshuffle them every epoch
        dataset = dataset.map(load, num_parallel_calls=AUTOTUNE).cache()
        if training:
            dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    else:  # shuffle the (small) paths, decode every epoch
        if training:
            dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
        dataset = dataset.map(load, num_parallel_calls=AUTOTUNE)

    if training and not field_mode:
        patches = view.patches_per_image

        def random_patches(image: tf.Tensor, *label: tf.Tensor) -> tf.data.Dataset:
            field = tf.shape(image)[:2]
            # breakhis.pipeline.coherence.scaled_size's rule on the tensor's own size, without its
            # max(1, ...): params load refuses a field scaled below one patch, so it cannot bind here, and an
            # extra op would move the op seeds of the random crops below (trained models would change)
            scaled = tf.cast(tf.round(tf.cast(field, tf.float32) * view.patch_scale), tf.int32)
            scaled_image = tf.cast(tf.image.resize(image, scaled, antialias=True), tf.uint8)
            crops = tf.stack([tf.image.random_crop(scaled_image, (*image_size, 3)) for _ in range(patches)])
            return tf.data.Dataset.from_tensor_slices(
                (crops, *(tf.repeat(x[tf.newaxis], patches) for x in label))
            )

        dataset = dataset.flat_map(random_patches)
        dataset = dataset.shuffle(min(SHUFFLE_LIMIT, len(paths) * patches), seed=shuffle_seed)
    elif not training and not field_mode or not training and view.test_time_flips:

        def all_views(image: tf.Tensor, *label: tf.Tensor) -> tf.data.Dataset:
            views = inference_views(image[tf.newaxis], image_size, view)
            count = tf.shape(views)[0]
            return tf.data.Dataset.from_tensor_slices(
                (views, *(tf.repeat(x[tf.newaxis], count) for x in label))
            )

        dataset = dataset.flat_map(all_views)  # fields: resized already, so flips only
    dataset = dataset.batch(batch_size)

    augmenter = geometric_augmenter(shuffle_seed) if training and augment else None

    def finish(images: tf.Tensor, *label: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, ...]:
        images = tf.cast(images, tf.float32)
        if augmenter is not None:  # Keras layers compute in the global policy's dtype (float16 when mixed)
            images = tf.cast(augmenter(images, training=True), tf.float32)
        if training and jitter.enabled():
            images = colour_jitter(images, jitter)
        images = preprocess(model_name, images, view.colour)
        return (images, *label) if label else images

    return dataset.map(finish, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
