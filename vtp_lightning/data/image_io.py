"""Reading images into RGB PIL images, with one clear :class:`DataError` for every failure.

Every source hands images to the views through :func:`to_rgb`, so grey, palette, RGBA and uint8
arrays all arrive as 3-channel PIL images (grey is replicated into R, G and B).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vtp_lightning.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

_FIX_HINT = "replace or delete the file, or set skip_corrupt: true to skip unreadable samples"


def open_image(path: str | Path) -> Image.Image:
    """Decode the image file at ``path`` fully (not lazily), so corruption surfaces here."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}; check the path (and image_root) in the data source")
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}; {_FIX_HINT}") from exc


def decode_image_bytes(data: bytes, where: str) -> Image.Image:
    """Decode encoded image bytes (e.g. from a tar shard); ``where`` names them in errors."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {where}: {exc}; {_FIX_HINT}") from exc


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """Return a 3-channel PIL image from a PIL image or a uint8 array ``(H, W)``, ``(H, W, 1|3)``."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DataError(f"image arrays must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise DataError(f"image arrays must be (H, W) or (H, W, 3), got shape {image.shape}")
        image = Image.fromarray(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image
