"""Grad-CAM on the three model types (flat custom CNN, nested VGG19 / ResNet50 backbones).

All slow: breakhis.modeling.gradcam imports TensorFlow, so it is imported inside the tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tests.conftest import TINY_INGEST_SIZE

pytestmark = pytest.mark.slow

LAYERS = {  # at 32x32: the last block with a map of at least 4x4, and the very last block
    "custom": ("block4_relu", "block4_relu"),
    "vgg19": ("vgg19/block4_relu4", "vgg19/block5_relu4"),  # from scratch: VGG19 with BatchNorm
    "resnet50": ("resnet50/conv3_block4_out", "resnet50/conv5_block3_out"),
}


def test_overlay_keeps_the_image_size() -> None:
    from breakhis.modeling.gradcam import overlay

    image = np.full((10, 20, 3), 200, np.uint8)
    heat = np.zeros((10, 20), np.float32)
    heat[:, 10:] = 1.0
    blended = overlay(image, heat)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert not np.array_equal(blended[:, :10], blended[:, 10:])
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:5])


def test_examples_cover_each_class_right_and_wrong() -> None:
    from breakhis.modeling.gradcam import select_examples

    targets = np.array([0, 0, 0, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.3, 0.8, 0.9, 0.6, 0.2, 0.95])
    chosen = select_examples(targets, probabilities, 0.5, per_group=2)
    assert chosen == [
        (0, "benign, correct"),
        (1, "benign, correct"),
        (2, "benign, wrong"),
        (6, "malignant, correct"),
        (3, "malignant, correct"),
        (5, "malignant, wrong"),
    ]


@pytest.fixture(scope="module")
def images(synthetic_images: list[Path]) -> np.ndarray:
    from breakhis.modeling.prediction import load_for_model

    return np.stack([load_for_model(p, TINY_INGEST_SIZE) for p in synthetic_images[::3]])  # 8 images


@pytest.mark.parametrize("name", ["custom", "vgg19", "resnet50"])
def test_maps_have_the_image_size_and_are_not_constant(
    name: str, tiny_models: Path, images: np.ndarray
) -> None:
    from breakhis.modeling.description import load_model
    from breakhis.modeling.gradcam import GradCam, heatmaps
    from breakhis.modeling.prediction import predict_batch
    from breakhis.modeling.views import WHOLE_FIELD
    from breakhis.pipeline.paths import model_file

    model, _ = load_model(model_file(name, tiny_models), name)
    cam = GradCam(model)
    assert cam.layer_name == LAYERS[name][0]
    assert GradCam(model, min_side=1).layer_name == LAYERS[name][1]
    maps, probabilities = heatmaps(cam, name, images, threshold=0.5)
    assert maps.shape == (len(images), *TINY_INGEST_SIZE)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    # every map shows where the evidence is, or is all zero: nothing in that image raises the score
    # of the class the model chose (seen with the 2-epoch ResNet50 on the morphology-only synthetic
    # images, whose nuclei are under a pixel at this size); at least half show evidence
    spread, peak = maps.std(axis=(1, 2)), maps.max(axis=(1, 2))
    shows = spread > 0.01
    assert ((shows & (peak > 0.9)) | (peak == 0)).all(), (spread, peak)  # normalised to the peak
    assert shows.mean() >= 0.5, spread
    # the rebuilt forward pass reproduces the model
    predicted = predict_batch({name: model}, images, {name: WHOLE_FIELD})[name]
    np.testing.assert_allclose(probabilities, predicted, atol=1e-5)


def test_an_explicit_layer_and_an_unknown_one(tiny_models: Path, images: np.ndarray) -> None:
    from breakhis.modeling.description import load_model
    from breakhis.modeling.gradcam import GradCam, heatmaps
    from breakhis.pipeline.paths import model_file

    model, _ = load_model(model_file("resnet50", tiny_models))
    maps, _ = heatmaps(GradCam(model, layer="conv4_block6_out"), "resnet50", images[:2], 0.5)
    assert maps.shape == (2, *TINY_INGEST_SIZE)
    with pytest.raises(ValueError, match="no convolutional layer named 'nope'"):
        GradCam(model, layer="nope")


def test_evaluation_grid(tiny_models: Path, synthetic_images: list[Path], tmp_path: Path) -> None:
    from breakhis.data.dataset import parse_image_name
    from breakhis.modeling.gradcam import write_gradcam_grid
    from breakhis.pipeline.paths import model_file

    rows = pd.DataFrame(
        {
            "path": [str(p) for p in synthetic_images],
            "filename": [p.name for p in synthetic_images],
            "target": [parse_image_name(p).target for p in synthetic_images],
        }
    )
    probabilities = np.tile([0.9, 0.2, 0.35, 0.7], 6)  # some right, some wrong in each class
    out = tmp_path / "plots" / "gradcam.png"
    models = {name: model_file(name, tiny_models) for name in ("custom", "vgg19", "resnet50")}
    thresholds = {"ensemble": 0.5, "custom": 0.4, "vgg19": 0.5, "resnet50": 0.6}  # per model, as evaluate
    chosen = write_gradcam_grid(models, rows, probabilities, thresholds, out, image_size=TINY_INGEST_SIZE)
    assert list(chosen["caption"].unique()) == [
        "benign, correct",
        "benign, wrong",
        "malignant, correct",
        "malignant, wrong",
    ]
    assert len(chosen) == 8
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > 400 and picture.shape[1] > 400


@pytest.mark.parametrize("name", ["custom", "resnet50"])
def test_a_subtype_model_explains_its_most_probable_subtype(name: str, images: np.ndarray) -> None:
    """An 8-way softmax (untrained, random weights): the rebuilt forward pass gives the model's
    eight probabilities, and the map is the gradient of the predicted subtype's logit."""
    import keras

    from breakhis.modeling.architectures import build_custom_cnn, build_transfer_model
    from breakhis.modeling.gradcam import GradCam, heatmaps, output_caption
    from breakhis.modeling.prediction import predict_batch
    from breakhis.modeling.views import WHOLE_FIELD

    keras.utils.set_random_seed(0)
    model = (
        build_custom_cnn((32, 32), [8, 8, 16, 16], 0.0, True, outputs=8)
        if name == "custom"
        else build_transfer_model(name, (32, 32), "none", 0.0, outputs=8).model
    )
    maps, probabilities = heatmaps(GradCam(model), name, images[:3], threshold=0.5)
    assert maps.shape == (3, *TINY_INGEST_SIZE) and probabilities.shape == (3, 8)
    np.testing.assert_allclose(
        probabilities, predict_batch({name: model}, images[:3], {name: WHOLE_FIELD})[name], atol=1e-5
    )
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    caption = output_caption(probabilities[0])
    assert (
        caption.startswith(("A ", "F ", "PT ", "TA ", "DC ", "LC ", "MC ", "PC "))
        and "p(malignant)=" in caption
    )


@pytest.mark.slow  # TensorFlow
def test_patch_maps_keep_their_strength_across_the_field() -> None:
    """A "model" whose evidence is each pixel's brightness: a bright left half and a dim right half
    (a quarter as bright). The field's map keeps that ratio: patches are not each scaled to their own
    peak (which lit the dim patches as brightly as the bright ones, seams between them)."""
    import keras

    from breakhis.modeling.gradcam import GradCam, heatmaps
    from breakhis.modeling.views import ViewParams

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", name="malignant")(x)
    model = keras.Model(inputs, outputs)
    image = np.full((64, 96, 3), 200, np.uint8)
    image[:, 48:] = 50
    view = ViewParams(input="patches", patch_scale=1.0)
    maps, probabilities = heatmaps(GradCam(model, layer="conv"), "custom", image[np.newaxis], 0.1, view)
    assert probabilities[0] > 0.1  # called malignant: the map explains the malignant logit
    bright, dim = maps[0][:, :40].mean(), maps[0][:, 56:].mean()
    assert bright == pytest.approx(1.0, abs=0.02)
    assert dim == pytest.approx(0.25, abs=0.03)  # 50 / 200, not 1.0


@pytest.mark.slow  # TensorFlow
def test_overlapping_patch_maps_blend_without_steps() -> None:
    """A 3x3 convolution with zero padding sees less at a patch's edges: on a uniform field its map
    dips along every patch border. Stitched with weights that fall towards each patch's edges, the
    field's map stays level wherever another patch's centre covers that border."""
    import keras

    from breakhis.modeling.gradcam import GradCam, heatmaps
    from breakhis.modeling.views import ViewParams, grid_offsets

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", name="malignant")(x)
    model = keras.Model(inputs, outputs)
    image = np.full((56, 80, 3), 200, np.uint8)
    assert grid_offsets((56, 80), (32, 32)) == [(t, c) for t in (0, 24) for c in (0, 24, 48)]  # overlapping
    view = ViewParams(input="patches", patch_scale=1.0)
    maps, _ = heatmaps(GradCam(model, layer="conv"), "custom", image[np.newaxis], 0.1, view)
    interior = maps[0][1:-1, 1:-1]  # the field's own border is a patch edge that nothing else covers
    assert interior.min() > 0.95, interior.min()  # plain averaging dips to 0.69 where borders cross
