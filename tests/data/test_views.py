"""Reconstruction view and DINO multi-crop: sizes, counts, scales, flips, normalisation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from vtp_lightning.data.views import (
    MultiCropView,
    ReconstructionView,
    default_local_crop_size,
    random_resized_box,
    to_normalized_batch,
)
from vtp_lightning.pixels import denormalize


@pytest.mark.parametrize(
    ("image_size", "patch_size", "expected"), [(32, 4, 12), (224, 16, 96), (256, 16, 112), (16, 8, 8)]
)
def test_default_local_crop_scales_dinov2_96_of_224_in_whole_patches(
    image_size: int, patch_size: int, expected: int
) -> None:
    assert default_local_crop_size(image_size, patch_size) == expected


def half_black_half_white(width: int = 28, height: int = 28) -> Image.Image:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, width // 2 :] = 255
    return Image.fromarray(array)


def test_multicrop_gives_two_global_and_n_local_crops_of_the_configured_sizes() -> None:
    view = MultiCropView(32, 12, num_local=5, global_scale=(0.32, 1.0), local_scale=(0.05, 0.32))
    global_crops, local_crops = view(half_black_half_white())
    assert [c.size for c in global_crops] == [(32, 32)] * 2
    assert [c.size for c in local_crops] == [(12, 12)] * 5
    assert MultiCropView(32, 12, 0, (0.32, 1.0), (0.05, 0.32))(half_black_half_white())[1] == []


@pytest.mark.parametrize("scale", [(0.05, 0.32), (0.32, 1.0)])
def test_crop_boxes_cover_the_configured_fraction_of_the_image(scale: tuple[float, float]) -> None:
    random.seed(0)
    for _ in range(200):
        left, top, right, bottom = random_resized_box(200, 150, scale)
        fraction = (right - left) * (bottom - top) / (200 * 150)
        assert scale[0] * 0.95 <= fraction <= scale[1] * 1.05
        assert 0 <= left < right <= 200 and 0 <= top < bottom <= 150


def test_reconstruction_view_is_a_centred_square_at_image_size() -> None:
    image = half_black_half_white(width=60, height=30)
    out = ReconstructionView(32, hflip=False)(image)
    assert out.size == (32, 32)
    pixels = np.asarray(out)
    assert pixels[:, :10].max() == 0 and pixels[:, -10:].min() == 255


def test_hflip_mirrors_about_half_of_the_views() -> None:
    random.seed(0)
    view = ReconstructionView(16, hflip=True)
    flipped = [np.asarray(view(half_black_half_white()))[0, 0, 0] == 255 for _ in range(200)]
    assert 0.35 < np.mean(flipped) < 0.65


def test_colour_jitter_changes_pixels_but_keeps_sizes() -> None:
    random.seed(1)
    colour = Image.fromarray(np.full((28, 28, 3), (200, 80, 40), dtype=np.uint8))
    view = MultiCropView(16, 8, 2, (0.99, 1.0), (0.9, 1.0), hflip=False, jitter=0.4)
    crops = [c for _ in range(10) for c in view(colour)[0]]
    assert {c.size for c in crops} == {(16, 16)}
    assert len({tuple(np.asarray(c)[8, 8]) for c in crops}) > 3


def test_batches_are_normalised_to_minus_one_one() -> None:
    white, black = Image.new("RGB", (4, 4), (255, 255, 255)), Image.new("RGB", (4, 4))
    batch = to_normalized_batch([white, black])
    assert batch.shape == (2, 3, 4, 4) and batch.dtype == torch.float32
    assert batch[0].eq(1).all() and batch[1].eq(-1).all()
    assert torch.equal(denormalize(batch)[0], torch.ones(3, 4, 4))
