"""Patch mode and on-line augmentation: the grid covers the field, inference averages the grid
(with flips), training draws random patches, and colour jitter treats both classes alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breakhis.data.images import write_rgb
from breakhis.modeling.views import ViewParams, grid_offsets, mean_over_views, views_per_image

PATCHES = ViewParams(input="patches", patch_scale=1.0, patches_per_image=3)


@pytest.mark.parametrize(
    ("field", "patch"), [((230, 350), (96, 96)), ((64, 96), (32, 32)), ((50, 50), (50, 50))]
)
def test_the_grid_covers_every_pixel_with_the_fewest_patches(
    field: tuple[int, int], patch: tuple[int, int]
) -> None:
    covered = np.zeros(field, int)
    offsets = grid_offsets(field, patch)
    for top, left in offsets:
        assert 0 <= top <= field[0] - patch[0] and 0 <= left <= field[1] - patch[1]
        covered[top : top + patch[0], left : left + patch[1]] += 1
    assert covered.min() >= 1
    assert len(offsets) == -(-field[0] // patch[0]) * -(-field[1] // patch[1])


def test_a_patch_larger_than_the_field_is_refused_by_key() -> None:
    with pytest.raises(ValueError, match="train.image_size must be at most"):
        grid_offsets((40, 60), (48, 48))


def test_views_and_their_mean() -> None:
    assert views_per_image((230, 350), (96, 96), PATCHES) == 12
    assert views_per_image((230, 350), (96, 96), ViewParams(test_time_flips=True)) == 4
    np.testing.assert_allclose(mean_over_views(np.array([0.1, 0.3, 0.5, 0.9]), 2), [0.2, 0.7])


@pytest.mark.slow  # TensorFlow
def test_inference_views_are_the_grid_patches_and_their_mirrors() -> None:
    from breakhis.modeling.input_pipeline import inference_views

    images = np.random.default_rng(0).integers(0, 256, size=(2, 64, 96, 3), dtype=np.uint8)
    view = ViewParams(input="patches", test_time_flips=True)
    views = inference_views(images, (32, 32), view).numpy()
    offsets = grid_offsets((64, 96), (32, 32))
    assert views.shape == (2 * len(offsets) * 4, 32, 32, 3)
    first = images[1, 0:32, 32:64].astype(np.float32)  # image 1, second grid patch
    base = (1 * len(offsets) + 1) * 4
    np.testing.assert_array_equal(views[base], first)
    np.testing.assert_array_equal(views[base + 1], first[:, ::-1])
    np.testing.assert_array_equal(views[base + 2], first[::-1])
    np.testing.assert_array_equal(views[base + 3], first[::-1, ::-1])


@pytest.mark.slow  # TensorFlow
def test_patch_inference_averages_the_grid(tmp_path: Path) -> None:
    """A "model" that outputs each view's mean brightness: evaluate's and predict's per-image
    probability is the mean over the grid patches of the field."""
    import keras

    from breakhis.modeling.input_pipeline import field_size, inference_dataset
    from breakhis.modeling.prediction import predict_batch

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(1 / 3)),
        ]
    )
    image = np.zeros((64, 80, 3), np.uint8)  # 3 overlapping patches across: offsets 0, 24, 48
    image[:, :36] = 255
    path = tmp_path / "field.png"
    write_rgb(path, image)
    expected = np.mean(
        [
            image[top : top + 32, left : left + 32].mean() / 255
            for top, left in grid_offsets((64, 80), (32, 32))
        ]
    )
    view = ViewParams(input="patches")
    data = inference_dataset([str(path)], model_name="custom", image_size=(32, 32), batch_size=4, view=view)
    per_view = model.predict(data, verbose=0).reshape(-1)
    assert per_view.size == views_per_image(field_size(str(path)), (32, 32), view) == 6
    np.testing.assert_allclose(mean_over_views(per_view, per_view.size), [expected], rtol=1e-5)
    np.testing.assert_allclose(
        predict_batch({"custom": model}, image[np.newaxis], {"custom": view})["custom"], [expected], rtol=1e-5
    )
    assert not np.isclose(expected, image.mean() / 255)  # the grid average is not the plain field mean


@pytest.mark.slow  # TensorFlow
def test_training_draws_random_patches_per_image_and_jitters_both_classes_alike(tmp_path: Path) -> None:
    from breakhis.modeling.input_pipeline import ColourJitter, training_dataset

    paths = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        write_rgb(path, np.full((64, 96, 3), (200, 120, 180), np.uint8))
        paths.append(str(path))
    labels = [0, 1] * 4
    data = training_dataset(
        paths,
        labels,
        model_name="custom",
        image_size=(32, 32),
        batch_size=64,
        seed=0,
        view=ViewParams(input="patches", patch_scale=0.5, patches_per_image=3),
        jitter=ColourJitter(hed=0.1, hsv=0.05),
    )
    images, targets = next(iter(data))
    images, targets = images.numpy(), targets.numpy()
    assert images.shape == (24, 32, 32, 3) and sorted(targets) == sorted(np.repeat(labels, 3))
    shift = np.abs(images.mean(axis=(1, 2)) - np.array([200, 120, 180])).sum(axis=1)
    for target in (0, 1):  # every image of both classes is changed, by similar amounts
        assert (shift[targets == target] > 0.5).all()
    assert 0.5 < shift[targets == 0].mean() / shift[targets == 1].mean() < 2


@pytest.mark.slow  # TensorFlow
def test_training_evaluate_predict_and_the_model_file_see_the_same_colour(tmp_path: Path) -> None:
    """`train.colour` reaches every path: training's and evaluate's datasets, predict's (and Grad-CAM's)
    model inputs, and the model's description, which predict reads the view from."""
    from breakhis.modeling.description import describe
    from breakhis.modeling.input_pipeline import inference_dataset, preprocess, stain_free, training_dataset
    from breakhis.modeling.prediction import model_inputs
    from breakhis.pipeline.params import Params

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = tmp_path / "field.png"
    write_rgb(path, image)
    colour = "haematoxylin"
    view = ViewParams(input="field", colour=colour)
    expected = preprocess("vgg19", stain_free(image[np.newaxis].astype("float32"), colour)).numpy()
    seen = {
        "training": next(
            iter(
                training_dataset(
                    [str(path)], [1], model_name="vgg19", image_size=(32, 32), batch_size=1, seed=0, view=view
                )
            )
        )[0].numpy(),
        "evaluate": next(
            iter(
                inference_dataset(
                    [str(path)], model_name="vgg19", image_size=(32, 32), batch_size=1, view=view
                )
            )
        ).numpy(),
        "predict": model_inputs("vgg19", _Sized(), image[np.newaxis], view),
    }
    for where, images in seen.items():
        np.testing.assert_allclose(images, expected, atol=1e-3, err_msg=where)
    assert not np.allclose(
        expected, np.asarray(preprocess("vgg19", image[np.newaxis].astype("float32"))), atol=1
    )

    params = Params.model_validate({"train": {"colour": colour}})
    description = describe(
        "vgg19", params, data_files=[], images=1, validation_images=0, magnifications=[100], training={}
    )
    assert description.input.view_params(test_time_flips=False).colour == colour


class _Sized:
    """What `model_inputs` needs of a model: its input size."""

    input_shape = (None, 32, 32, 3)
