"""Reading, checking and resizing images (OpenCV), the same way for every data source.

Size policy: scale so the image covers the target (aspect ratio kept), then crop the centre.
700x460 and 700x456 both end at exactly `ingest.image_size`, losing at most a few edge pixels.

Unexpected sizes are refused rather than distorted (`size_problem`): an image that would have to
be enlarged by more than 5% to cover the target (a thumbnail, or a target bigger than the data),
or whose width/height ratio is more than 25% away from the source's (BreakHis: 700/460, landscape;
a portrait, square or strip image is not a BreakHis field of view).

Before anything is decoded, the file's header is read (Pillow reads only the header): its format
must match the file's extension (JPEG bytes in a `.png` are refused: BreakHis is lossless) and
its width x height must stay under MAX_PIXELS, one cap for ingest and predict, so that a
decompression bomb (a small PNG whose header says 20000x13143) is refused without being decoded
and OpenCV's own pixel limit is never reached.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from breakhis.pipeline.files import named
from breakhis.pipeline.params import DataParams


class ImageError(ValueError):
    """An image that cannot be used: unreadable, truncated, not RGB."""


BREAKHIS_ASPECT = 700 / 460  # width / height of a BreakHis image
# The largest image decoded, by its header: 16 Mpx (48 MB as RGB). A BreakHis field has 0.32 Mpx;
# beyond this is a whole-slide image (tile it) or a decompression bomb.
MAX_PIXELS = 16_000_000
Image.MAX_IMAGE_PIXELS = None  # Pillow's own bomb check (179 Mpx) gives way to MAX_PIXELS, sized in errors
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
MAX_UPSCALE = 1.05
MAX_ASPECT_CHANGE = 1.25


def source_aspect(data: DataParams) -> float:
    """Width / height that ingest expects of the source's images (the generated size for synthetic)."""
    if data.source == "synthetic":
        height, width = data.synthetic.image_size
        return width / height
    return BREAKHIS_ASPECT


def _as_rgb(image: np.ndarray | None) -> np.ndarray:
    if image is None:
        raise ImageError("not a readable image (truncated, corrupt or not an image file)")
    if image.dtype != np.uint8:
        raise ImageError(f"{image.dtype} pixels, expected 8-bit")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 3:
        kind = {1: "grayscale", 2: "grayscale with alpha", 4: "RGBA (4 channels)"}.get(channels, "")
        raise ImageError(f"{kind or f'{channels} channels'}, expected 3-channel RGB")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_header(source: Path | str, suffix: str) -> tuple[int, int]:
    """(width, height) from the image's header, read without decoding the pixels; ImageError when
    the header is unreadable, its format is not the one `suffix` names, or it is over MAX_PIXELS."""
    try:
        with Image.open(source) as image:
            found, (width, height) = image.format, image.size
            frames = getattr(image, "n_frames", 1)  # APNG: from its header; TIFF: counts the pages
    except UnidentifiedImageError:
        raise ImageError("not a readable image (truncated, corrupt or not an image file)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a header Pillow recognises but cannot parse
        raise ImageError(f"not a readable image (corrupt header: {exc})") from None
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"its header says {width}x{height} pixels, over the cap of {MAX_PIXELS:,} (a field of view is "
            "700x460; a whole-slide image must be tiled first; a small file with such a header is a "
            "decompression bomb)"
        )
    if frames > 1:
        kind = (
            f"an animated PNG of {frames} frames" if found == "PNG" else f"a {found} file of {frames} pages"
        )
        raise ImageError(f"{kind}: which one is the field of view? Save that one alone")
    expected = FORMATS.get(suffix.lower())
    if expected and found != expected:
        raise ImageError(
            f"holds {found} data, not {expected} as its name says"
            + (
                " (BreakHis images are lossless PNGs: a converted or renamed file?)"
                if expected == "PNG"
                else ""
            )
        )
    return width, height


def _decoded(image: Callable[[], np.ndarray | None]) -> np.ndarray:
    """OpenCV's result, its own errors (pixel limits, codec failures) as ImageError."""
    try:
        return _as_rgb(image())
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoding failed"
        raise ImageError(f"OpenCV cannot decode it: {reason}") from None


def load_rgb(path: Path | str) -> np.ndarray:
    """Decode a 3-channel 8-bit image file as RGB; ImageError says why anything else is refused."""
    try:
        status = os.stat(path)
    except OSError as exc:
        raise ImageError(f"cannot read the file: {exc.strerror}") from None
    if stat.S_ISDIR(status.st_mode):
        raise ImageError("a folder, not an image file")
    if not stat.S_ISREG(status.st_mode):  # a FIFO would block the reader forever, a device never end
        raise ImageError("not a regular file (a FIFO, socket or device)")
    if status.st_size == 0:
        raise ImageError("empty file")
    if not os.access(path, os.R_OK):
        raise ImageError("cannot read the file: permission denied")
    check_header(path, Path(path).suffix)
    return _decoded(lambda: cv2.imread(str(path), cv2.IMREAD_UNCHANGED))  # reads the file as it decodes


def read_rgb(path: Path | str) -> np.ndarray:
    """`load_rgb`, with the file named in the error."""
    try:
        return load_rgb(path)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None


def size_problem(
    shape: tuple[int, ...], size: tuple[int, int], expected_aspect: float = BREAKHIS_ASPECT
) -> str:
    """Why an image of `shape` is an unexpected size for resizing to `size` ('' when it is fine)."""
    height, width = shape[:2]
    aspect = width / height
    if max(aspect / expected_aspect, expected_aspect / aspect) > MAX_ASPECT_CHANGE:
        return (
            f"unexpected size {width}x{height}: width/height {aspect:.2f} is more than "
            f"{MAX_ASPECT_CHANGE - 1:.0%} away from the expected {expected_aspect:.2f}"
        )
    scale = max(size[0] / height, size[1] / width)
    if scale > MAX_UPSCALE:
        return (
            f"unexpected size {width}x{height}: smaller than ingest.image_size "
            f"{size[1]}x{size[0]} (width x height), it would be enlarged {scale:.2f} times"
        )
    return ""


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


def write_rgb(path: Path | str, image: np.ndarray, png_compression: int | None = None) -> None:
    """Write an RGB image; for PNG, `png_compression` 0-9 trades speed for size (None: OpenCV's)."""
    options = [] if png_compression is None else png_options(png_compression)
    write_bgr(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options)


def write_bgr(path: Path | str, image: np.ndarray, options: Sequence[int] = ()) -> None:
    """Encode an OpenCV (BGR) image in the format its suffix names, then write the bytes with Python:
    a full disk or a read-only folder raises OSError naming the file and why (`cv2.imwrite` only
    returns False, and libpng prints "Write Error")."""
    encoded, data = cv2.imencode(Path(path).suffix, image, list(options))
    if not encoded:
        raise ImageError(f"{path}: OpenCV cannot encode an image as {Path(path).suffix}")
    try:
        Path(path).write_bytes(data.tobytes())
    except OSError as exc:  # a full disk: write() names no file
        raise named(exc, Path(path)) from None


def png_options(compression: int) -> list[int]:
    """OpenCV PNG options: level 0 stores without filtering (fastest), 1-9 filter and deflate."""
    if compression == 0:
        return [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return [cv2.IMWRITE_PNG_COMPRESSION, compression]
