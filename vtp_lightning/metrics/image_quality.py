"""Per-image PSNR and SSIM of reconstructions, the paper's pixel-fidelity numbers next to rFID.

Both return one value per image so callers can average them with a distributed mean
(e.g. ``torchmetrics.MeanMetric``) instead of averaging batch means of unequal batches.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _check_pair(pred01: torch.Tensor, target01: torch.Tensor) -> None:
    if pred01.shape != target01.shape or pred01.ndim != 4:
        raise ValueError(
            f"need two (B, C, H, W) batches of equal shape, got {tuple(pred01.shape)}, {tuple(target01.shape)}"
        )


def psnr_per_image(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair ``(B,)``, for images in ``[0, 1]``."""
    _check_pair(pred01, target01)
    return peak_signal_noise_ratio(
        pred01.float(), target01.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )


def ssim_per_image(pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """SSIM (11x11 Gaussian window, sigma 1.5) of each image pair ``(B,)``, for images in ``[0, 1]``."""
    _check_pair(pred01, target01)
    return structural_similarity_index_measure(
        pred01.float(), target01.float(), data_range=1.0, reduction="none"
    )
