"""Decoding refuses what is not 8-bit RGB with the reason; the size policy is one rule for all."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from breakhis.data.images import ImageError, cover_and_crop, load_rgb, size_problem


def encoded(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data


def written(folder: Path, data: np.ndarray) -> Path:
    path = folder / "image.png"
    path.write_bytes(data.tobytes())
    return path


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((46, 70), np.uint8), "grayscale"),
        (np.zeros((46, 70, 4), np.uint8), "RGBA"),
        (np.zeros((46, 70, 3), np.uint16), "uint16 pixels"),
    ],
)
def test_decode_refuses_all_but_8_bit_rgb(image: np.ndarray, reason: str, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=reason):
        load_rgb(written(tmp_path, encoded(image)))


def test_decode_refuses_empty_truncated_and_non_images(tmp_path: Path) -> None:
    data = encoded(np.random.default_rng(0).integers(0, 255, (46, 70, 3), dtype=np.uint8))
    for bad, reason in (
        (data[:0], "empty"),
        (data[: len(data) // 2], "truncated"),
        (np.frombuffer(b"GIF89a not really", np.uint8), "not a readable image"),
    ):
        with pytest.raises(ImageError, match=reason):
            load_rgb(written(tmp_path, bad))


def test_decode_gives_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((46, 70, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    assert load_rgb(written(tmp_path, encoded(bgr)))[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("height", [456, 460, 470])
@pytest.mark.parametrize("size", [(230, 350), (224, 224), (460, 700), (64, 96)])
def test_every_breakhis_height_ends_at_image_size(height: int, size: tuple[int, int]) -> None:
    image = np.zeros((height, 700, 3), np.uint8)
    assert size_problem(image.shape, size) == ""
    assert cover_and_crop(image, size).shape == (*size, 3)


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ((700, 460, 3), "width/height 0.66"),  # portrait
        ((700, 700, 3), "width/height 1.00"),  # square
        ((46, 70, 3), "smaller than ingest.image_size"),  # thumbnail
        ((200, 700, 3), "width/height 3.50"),  # strip
    ],
)
def test_unexpected_sizes_are_refused_with_the_reason(shape: tuple[int, int, int], reason: str) -> None:
    assert reason in size_problem(shape, (230, 350))


def test_the_expected_aspect_follows_the_source() -> None:
    assert size_problem((96, 128, 3), (64, 96), expected_aspect=128 / 96) == ""
    assert "width/height" in size_problem((96, 128, 3), (64, 96), expected_aspect=2.5)
