"""Reading, checking and resizing images (OpenCV), the same way for every data source.

Size policy: scale so the image covers the target (aspect ratio kept), then crop the centre.
700x460 and 700x456 both end at exactly `ingest.image_size`, losing at most a few edge pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """An image that cannot be used: unreadable, truncated, not RGB."""


def read_rgb(path: Path | str) -> np.ndarray:
    """Decode a 3-channel 8-bit image as RGB, refusing anything else with the reason."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: not a readable image (truncated or not an image file)")
    if image.dtype != np.uint8:
        raise ImageError(f"{path}: {image.dtype} pixels, expected 8-bit")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 3:
        raise ImageError(f"{path}: {channels} channel(s), expected 3 (RGB)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def pixel_hash(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and shape: equal for pixel-identical images with different bytes."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def cover_and_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize keeping the aspect ratio so the image covers (height, width), then centre-crop."""
    height, width = size
    scale = max(height / image.shape[0], width / image.shape[1])
    new_h = max(height, round(image.shape[0] * scale))
    new_w = max(width, round(image.shape[1] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[top : top + height, left : left + width]


def write_rgb(path: Path | str, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ImageError(f"{path}: could not write image")
