"""Running trained models on new image files, with the same preprocessing as training.

A raw file goes the way an ingested image went before training, through the same functions:
`images.read_rgb` -> ingest's size check (`images.size_problem`) -> `images.cover_and_crop` to
`ingest.image_size` (so a raw 700x460 BreakHis PNG and an already ingested one end identical)
-> `input_pipeline.resize_image` to the model's input size -> `input_pipeline.preprocess` for the
model. Every size, scale and setting comes from the model's own description
(`breakhis.modeling.description`), never from params.yaml; models load with `safe_mode=True`.

TensorFlow is imported only by the functions that run models, so that the command checks its
inputs (and fails on bad ones) in a second instead of after TensorFlow's import. Which models run
is `models_folder`'s, which files `breakhis.data.input_files`', the per-patient summary `per_patient`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breakhis.data.images import BREAKHIS_ASPECT, ImageError, cover_and_crop, read_rgb, size_problem
from breakhis.data.stain import StainNormalization, normalize_stain
from breakhis.modeling.views import WHOLE_FIELD, ViewParams, mean_over_views, views_per_image

if TYPE_CHECKING:
    import keras


def model_image_size(model: keras.Model) -> tuple[int, int]:
    height, width = model.input_shape[1:3]
    return int(height), int(width)


def check_size(path: Path | str, shape: tuple[int, ...], size: tuple[int, int], aspect: float) -> None:
    """Refuse the sizes ingest refuses (`images.size_problem`; whole-slide images and decompression
    bombs are refused from their header by `images.read_rgb`, before decoding)."""
    problem = size_problem(shape, size, aspect)
    if problem:
        raise ImageError(f"{path}: {problem}")


def load_for_model(
    path: Path | str,
    size: tuple[int, int] | None,
    aspect: float = BREAKHIS_ASPECT,
    stain: StainNormalization = "none",
) -> np.ndarray:
    """A raw or ingested image file as ingest would have stored it: RGB uint8, size-checked,
    cover-and-cropped to `size` (`ingest.image_size`; `aspect`: the source images' width / height)
    and stain-normalised as `ingest.stain_normalization` says (same function, same fixed reference);
    `size=None` keeps the file as it is (an image ingest already wrote)."""
    image = read_rgb(path)
    if size is None:
        return image
    check_size(path, image.shape, size, aspect)
    return normalize_stain(cover_and_crop(image, size), stain).image


def check_images(
    paths: Sequence[str], size: tuple[int, int], aspect: float = BREAKHIS_ASPECT, workers: int = 4
) -> None:
    """Decode and size-check every image first; raise one ImageError listing all the bad ones."""

    def problem(path: str) -> str:
        try:
            check_size(path, read_rgb(path).shape, size, aspect)
        except ImageError as exc:
            return str(exc)
        return ""

    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        problems = [p for p in pool.map(problem, paths) if p]
    if problems:
        raise ImageError(f"{len(problems)} image(s) cannot be used:\n  " + "\n  ".join(problems))


def model_inputs(
    model_name: str, model: keras.Model, images: np.ndarray, view: ViewParams = WHOLE_FIELD
) -> np.ndarray:
    """A batch of ingest-sized RGB uint8 images -> the named model's input views, image by image
    (training's and evaluate's own functions: the field resized, or the grid of patches)."""
    from breakhis.modeling.input_pipeline import inference_views, preprocess

    views = inference_views(images, model_image_size(model), view)
    return np.asarray(preprocess(model_name, views, view.colour))


def predict_batch(
    models: Mapping[str, keras.Model], images: np.ndarray, views: Mapping[str, ViewParams]
) -> dict[str, np.ndarray]:
    """Malignant probability of every model for a batch of ingest-sized RGB uint8 images: the mean
    over each image's views (`views[name]`: how that model sees a field), as evaluate computes it."""
    probabilities = {}
    for name, model in models.items():
        view = views[name]
        count = views_per_image(images.shape[1:3], model_image_size(model), view)
        per_view = np.asarray(model(model_inputs(name, model, images, view), training=False))
        probabilities[name] = mean_over_views(per_view, count)
    return probabilities


def predict_ingested(
    name: str, model: keras.Model, paths: Sequence[str], view: ViewParams, batch_size: int = 64
) -> np.ndarray:
    """Malignant probability of the named model for each ingested image file (as ingest wrote them,
    streamed through tf.data: memory bounded by the batch): the mean over the model's views."""
    from breakhis.modeling.input_pipeline import field_size, inference_dataset

    size = model_image_size(model)
    data = inference_dataset(paths, model_name=name, image_size=size, batch_size=batch_size, view=view)
    views = views_per_image(field_size(paths[0]), size, view)
    return mean_over_views(model.predict(data, verbose=0), views)
