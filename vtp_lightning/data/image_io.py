"""Reading images into RGB PIL images, with one clear :class:`DataError` for every failure.

Every source hands images to the views through :func:`to_rgb`, so every mode arrives as a faithful
3-channel 8-bit image:

* transparency (RGBA, LA, PA, palette or grey/RGB with a transparent colour) is composited over the
  configured background — ``convert("RGB")`` would keep whatever colour is stored under
  fully transparent pixels, often black or leftover junk;
* 16-bit (``I;16*``) and 32-bit integer (``I``, read as 16-bit data) greys are scaled by 255/65535,
  float (``F``) greys in [0, 1] by 255 (PIL's own conversion clips both to 0..255 instead);
* the EXIF orientation of a file is applied, so a photo is seen the way viewers show it;
* images with more pixels than the configured limit (decompression bombs) are a :class:`DataError`,
  skippable with ``skip_corrupt``, before they are decoded.

The background and the pixel limit are process-wide reading options (:func:`configure_image_reading`),
set by the data module before its DataLoader workers start, which inherit them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vtp_lightning.errors import ConfigError, DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

#: PIL's own default limit (about 89.5 megapixels)
DEFAULT_MAX_PIXELS = 89_478_485
WHITE = (255, 255, 255)

_FIX_HINT = "replace or delete the file, or set skip_corrupt: true to skip unreadable samples"
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_GREY_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


@dataclass
class ImageReading:
    """How images are turned into RGB: the colour under transparency and the pixel limit."""

    background: tuple[int, int, int] = WHITE
    max_pixels: int | None = DEFAULT_MAX_PIXELS


_reading = ImageReading()


def configure_image_reading(
    background: tuple[int, int, int] | list[int] = WHITE, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> None:
    """Set the background colour (R, G, B in 0..255) and the pixel limit (``None``: no limit)."""
    colour = tuple(int(c) for c in background)
    if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
        raise ConfigError(f"image background must be three values in 0..255 (R, G, B), got {background}")
    if max_pixels is not None and max_pixels < 1:
        raise ConfigError(f"max_image_pixels must be positive or null, got {max_pixels}")
    _reading.background = colour  # type: ignore[assignment]
    _reading.max_pixels = max_pixels


def open_image(path: str | Path) -> Image.Image:
    """Decode the image file at ``path`` fully (not lazily), so corruption surfaces here."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"image file not found: {path}; check the path (and image_root) in the data source",
            where=str(path),
        )
    return _decode(path, str(path))


def decode_image_bytes(data: bytes, where: str) -> Image.Image:
    """Decode encoded image bytes (e.g. from a tar shard); ``where`` names them in errors."""
    return _decode(io.BytesIO(data), where)


def _decode(source: Path | io.BytesIO, where: str) -> Image.Image:
    try:
        # PIL's own bomb check cites twice the limit in its error and only warns below that; the
        # size is checked here instead, from the header, before any pixel is decoded.
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(source) as image:
                _refuse_too_many_pixels(image, where)
                image.load()
                return to_rgb(ImageOps.exif_transpose(image))
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {where}: {exc}; {_FIX_HINT}", where=where) from exc


def _refuse_too_many_pixels(image: Image.Image, where: str) -> None:
    limit = _reading.max_pixels
    width, height = image.size
    if limit is not None and width * height > limit:
        raise DataError(
            f"image {where} has {width}x{height} = {width * height} pixels, more than the {limit}-pixel "
            f"limit (a possible decompression bomb); raise data.max_image_pixels if it is genuine, or "
            f"{_FIX_HINT}",
            where=where,
        )


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """Return a 3-channel 8-bit PIL image from a PIL image or a uint8 array ``(H, W)``, ``(H, W, 1|3)``."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DataError(f"image arrays must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise DataError(f"image arrays must be (H, W) or (H, W, 3), got shape {image.shape}")
        image = Image.fromarray(image)
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in _WIDE_GREY_MODES or image.mode == "F":
        return _scaled_grey(image).convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _composited(image.convert("RGBA"))
    return image.convert("RGB")


def _scaled_grey(image: Image.Image) -> Image.Image:
    """A wide grey image (16/32-bit integer or float) as 8-bit ``L``, scaled rather than clipped."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        finite = values[np.isfinite(values)]
        full_scale = 1.0 if finite.size == 0 or finite.max() <= 1.0 else 255.0
    else:
        full_scale = float(_WIDE_GREY_MODES[image.mode])
    scaled = np.nan_to_num(values, nan=0.0) * (255.0 / full_scale)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _composited(rgba: Image.Image) -> Image.Image:
    """``rgba`` over the background colour: ``a * colour + (1 - a) * background``, alpha dropped."""
    background = Image.new("RGBA", rgba.size, (*_reading.background, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
