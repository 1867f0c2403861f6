"""Stain normalisation: differently stained copies of one field end up alike; background-heavy and
white fields never give NaN or a crash, and are reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breakhis.data.images import cover_and_crop, read_rgb
from breakhis.data.stain import MIN_TISSUE_FRACTION, normalize_stain, optical_density, tissue_mask

# Ruifrok & Johnston stain vectors (optical density per unit stain, RGB rows): H, E, DAB
STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
STAINS /= np.linalg.norm(STAINS, axis=1, keepdims=True)


def restain(
    image: np.ndarray, scale: tuple[float, float, float], shift: tuple[float, float, float]
) -> np.ndarray:
    """The same field as another lab would stain it: H, E, D concentrations scaled and shifted."""
    density = -np.log((image.astype(np.float64) + 1.0) / 256.0)
    stains = density @ np.linalg.inv(STAINS) * np.array(scale) + np.array(shift)
    return np.clip(256.0 * np.exp(-(stains @ STAINS)) - 1.0, 0, 255).round().astype(np.uint8)


@pytest.fixture
def field(sample_tree: Path) -> np.ndarray:
    path = next(sample_tree.rglob("SOB_B_A-14-22549AB-100-027.png"))
    return cover_and_crop(read_rgb(path), (115, 175))


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_differently_stained_copies_of_one_field_end_up_alike(field: np.ndarray) -> None:
    pale = restain(field, (0.6, 0.7, 1.0), (0.0, -0.05, 0.0))
    dark = restain(field, (1.5, 1.3, 1.0), (0.05, 0.05, 0.0))
    before = difference(pale, dark)
    after = difference(normalize_stain(pale, "macenko").image, normalize_stain(dark, "macenko").image)
    assert before > 20  # the copies really look different
    assert after < before / 2, (before, after)  # measured: 40.7 -> 18.6 mean absolute difference


def test_normalisation_changes_the_image_and_keeps_its_shape(field: np.ndarray) -> None:
    result = normalize_stain(field, "macenko")
    assert result.problem == ""
    assert result.image.shape == field.shape and result.image.dtype == np.uint8
    assert difference(result.image, field) > 1


def test_none_leaves_the_image_alone(field: np.ndarray) -> None:
    result = normalize_stain(field, "none")
    assert result.image is field and result.problem == ""


@pytest.mark.parametrize(
    "image",
    [
        np.full((40, 60, 3), 250, np.uint8),  # white: no tissue
        np.full((40, 60, 3), 0, np.uint8),  # black: one colour, no stain vectors to find
        np.full((40, 60, 3), (120, 60, 160), np.uint8),  # one flat colour: a degenerate estimate
    ],
    ids=["white", "black", "flat"],
)
def test_fields_without_a_stain_estimate_are_kept_as_they_are_and_reported(image: np.ndarray) -> None:
    result = normalize_stain(image, "macenko")
    assert result.problem.startswith("kept as is")
    assert np.array_equal(result.image, image)


def test_a_mostly_background_field_is_normalised_without_nan(field: np.ndarray) -> None:
    """A field that is 85% white background still has enough tissue to estimate the stains."""
    mostly_white = np.full_like(field, 245)
    rows = field.shape[0] * 15 // 100
    mostly_white[:rows] = field[:rows]
    assert np.mean(tissue_mask(optical_density(mostly_white))) >= MIN_TISSUE_FRACTION
    result = normalize_stain(mostly_white, "macenko")
    assert result.problem == ""
    assert np.isfinite(result.image.astype(float)).all()


# ---- train.colour: views without stain colour ------------------------------------------------------


@pytest.mark.slow  # TensorFlow
def test_the_haematoxylin_view_ignores_eosin_and_follows_haematoxylin(field: np.ndarray) -> None:
    from breakhis.modeling.input_pipeline import stain_free

    def view(image: np.ndarray, colour: str) -> np.ndarray:
        return np.asarray(stain_free(image.astype("float32")[np.newaxis], colour))[0]  # type: ignore[arg-type]

    more_eosin = restain(field, (1.0, 2.0, 1.0), (0.0, 0.2, 0.0))  # another lab's eosin
    more_haematoxylin = restain(field, (1.5, 1.0, 1.0), (0.0, 0.0, 0.0))
    original = view(field, "haematoxylin")
    assert difference(view(field, "rgb"), view(more_eosin, "rgb")) > 8  # 10.7 levels on this field
    assert difference(view(field, "grey"), view(more_eosin, "grey")) > 8  # grey keeps stain strength
    assert difference(original, view(more_eosin, "haematoxylin")) < 1  # 0.4: the model sees none of it
    assert view(more_haematoxylin, "haematoxylin").mean() < original.mean() - 20  # darker nuclei: 28
    assert original.min() >= 0 and original.max() <= 255


@pytest.mark.slow  # TensorFlow
@pytest.mark.parametrize("colour", ["grey", "haematoxylin"])
def test_grey_and_haematoxylin_views_have_no_colour_and_rgb_is_untouched(
    field: np.ndarray, colour: str
) -> None:
    from breakhis.modeling.input_pipeline import stain_free

    images = field.astype("float32")[np.newaxis]
    seen = np.asarray(stain_free(images, colour))  # type: ignore[arg-type]
    assert seen.shape == images.shape
    assert np.array_equal(seen[..., 0], seen[..., 1]) and np.array_equal(seen[..., 0], seen[..., 2])
    assert seen.std() > 5  # the tissue is still there
    assert np.array_equal(stain_free(images, "rgb"), images)


@pytest.mark.slow  # TensorFlow
def test_stain_transfer_gives_each_image_the_stain_of_another_and_keeps_its_tissue(field: np.ndarray) -> None:
    import tensorflow as tf

    from breakhis.modeling.input_pipeline import HED_FROM_RGB, stain_transfer

    def concentrations(images: np.ndarray) -> np.ndarray:
        density = -np.log((images.astype(np.float64) + 1.0) / 256.0)
        return (density @ HED_FROM_RGB.astype(np.float64))[..., :2]  # haematoxylin and eosin

    def stain_means(images: np.ndarray) -> np.ndarray:
        return concentrations(images).mean(axis=(1, 2))

    stains = [(1.0, 1.0, 1.0), (1.6, 0.7, 1.0), (0.7, 1.8, 1.0), (1.3, 1.3, 1.0)]
    batch = np.stack([restain(field, scale, (0.0, 0.0, 0.0)) for scale in stains]).astype("float32")
    before, orders = stain_means(batch), set()
    tf.random.set_seed(0)
    for _ in range(4):  # four draws
        moved = stain_transfer(tf.constant(batch)).numpy()
        after = stain_means(moved)
        donors = [int(np.argmin(np.abs(before - stain).sum(axis=1))) for stain in after]
        assert sorted(donors) == [0, 1, 2, 3]  # the batch's stains, each given to one image
        np.testing.assert_allclose(after, before[donors], atol=0.02)  # each took its donor's stain
        for original, result in zip(concentrations(batch), concentrations(moved), strict=True):
            assert (
                np.corrcoef(original[..., 0].ravel(), result[..., 0].ravel())[0, 1] > 0.95
            )  # its own nuclei
        orders.add(tuple(donors))
    assert len(orders) > 1  # drawn at random
