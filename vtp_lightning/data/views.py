"""Image views: the reconstruction / CLIP view and DINO-style multi-crop, on PIL images.

Crops are cut and resized in a single PIL call (``resize(box=...)``) from the image at its native
resolution. Randomness comes from Python's ``random``, which PyTorch seeds per DataLoader worker and
Lightning's ``seed_everything`` seeds in the main process. Pixels become normalised tensors only in
:func:`to_normalized_batch`, which uses :mod:`vtp_lightning.pixels`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance

from vtp_lightning.pixels import normalize

Box = tuple[int, int, int, int]
_RESAMPLE = Image.Resampling.BICUBIC
_ASPECT_RANGE = (3 / 4, 4 / 3)


def default_local_crop_size(image_size: int, patch_size: int) -> int:
    """DINOv2's 96 px local crop for 224 px images, scaled to ``image_size``, in whole patches."""
    return max(patch_size, round(image_size * 96 / 224 / patch_size) * patch_size)


def to_normalized_batch(images: Sequence[Image.Image]) -> torch.Tensor:
    """Stack same-size RGB PIL images into a normalised float tensor ``(B, 3, H, W)``."""
    # uint8 -> [0, 1] in numpy: single-threaded and cheap, where small torch ops pay thread overhead
    array = np.stack([np.asarray(image, dtype=np.uint8) for image in images]).transpose(0, 3, 1, 2)
    return normalize(torch.from_numpy(array.astype(np.float32, order="C") * np.float32(1 / 255)))


def center_square(width: int, height: int) -> Box:
    """The largest centred square, i.e. "resize the shorter side, then centre-crop"."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def random_resized_box(width: int, height: int, scale: tuple[float, float]) -> Box:
    """A random box covering ``scale`` of the area with aspect ratio in [3/4, 4/3] (as in DINO)."""
    area = width * height
    log_lo, log_hi = math.log(_ASPECT_RANGE[0]), math.log(_ASPECT_RANGE[1])
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(log_lo, log_hi))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = random.randint(0, width - w), random.randint(0, height - h)
            return left, top, left + w, top + h
    return center_square(width, height)


def maybe_flip(image: Image.Image, enabled: bool) -> Image.Image:
    """Mirror left-right with probability 1/2 when ``enabled``."""
    if enabled and random.random() < 0.5:
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def color_jitter(image: Image.Image, strength: float, probability: float = 0.8) -> Image.Image:
    """Mild brightness / contrast / saturation jitter by factors in ``[1 - strength, 1 + strength]``."""
    if strength <= 0 or random.random() >= probability:
        return image
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(random.uniform(max(0.0, 1 - strength), 1 + strength))
    return image


class ReconstructionView:
    """The view every row gets: centre square resized to ``image_size``, optionally flipped."""

    def __init__(self, image_size: int, hflip: bool) -> None:
        self.image_size = image_size
        self.hflip = hflip

    def __call__(self, image: Image.Image) -> Image.Image:
        box = center_square(*image.size)
        return maybe_flip(image.resize((self.image_size, self.image_size), _RESAMPLE, box=box), self.hflip)


class MultiCropView:
    """DINO multi-crop: exactly 2 global crops and ``num_local`` local crops of one image.

    Args:
        global_size: side of the global crops (in pixels; a multiple of the patch size).
        local_size: side of the local crops.
        num_local: number of local crops (0 turns them off).
        global_scale: range of the image area a global crop covers.
        local_scale: range of the image area a local crop covers.
        hflip: mirror each crop with probability 1/2.
        jitter: colour-jitter strength (0 = off).
    """

    NUM_GLOBAL = 2

    def __init__(
        self,
        global_size: int,
        local_size: int,
        num_local: int,
        global_scale: tuple[float, float],
        local_scale: tuple[float, float],
        hflip: bool = True,
        jitter: float = 0.0,
    ) -> None:
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = global_scale, local_scale
        self.hflip, self.jitter = hflip, jitter

    def _crop(self, image: Image.Image, size: int, scale: tuple[float, float]) -> Image.Image:
        crop = image.resize((size, size), _RESAMPLE, box=random_resized_box(*image.size, scale))
        return color_jitter(maybe_flip(crop, self.hflip), self.jitter)

    def __call__(self, image: Image.Image) -> tuple[list[Image.Image], list[Image.Image]]:
        global_crops = [
            self._crop(image, self.global_size, self.global_scale) for _ in range(self.NUM_GLOBAL)
        ]
        local_crops = [self._crop(image, self.local_size, self.local_scale) for _ in range(self.num_local)]
        return global_crops, local_crops
