"""PSNR and SSIM per image, on [0, 1] images."""

from __future__ import annotations

import math

import pytest
import torch

from vtp_lightning.metrics.image_quality import psnr_per_image, ssim_per_image


def test_psnr_is_ten_log10_of_one_over_the_mean_squared_error() -> None:
    target = torch.full((2, 3, 16, 16), 0.5)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1] += 0.01  # MSE 1e-4 -> 40 dB

    torch.testing.assert_close(psnr_per_image(pred, target), torch.tensor([20.0, 40.0]))


def test_ssim_is_one_for_identical_images_and_drops_with_noise() -> None:
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    noisy = (images + 0.2 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)

    torch.testing.assert_close(ssim_per_image(images, images), torch.ones(3))
    assert (ssim_per_image(noisy, images) < 0.9).all()
    assert math.isinf(psnr_per_image(images, images)[0].item())


def test_rejects_batches_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        psnr_per_image(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 9, 9))
