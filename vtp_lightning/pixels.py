"""The one place that says how pixels are normalised (torch only, a foundation module).

Images enter every model as float tensors ``(B, 3, H, W)`` scaled to ``[-1, 1]``
(mean 0.5, std 0.5 per channel). The pixel decoder predicts in the same space (no tanh).
It sits outside :mod:`vtp_lightning.data` (which also holds the Lightning data module) so that the
metrics use it without importing Lightning.
"""

from __future__ import annotations

import torch

IMAGE_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
IMAGE_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGE_MEAN, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGE_STD, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return mean, std


def normalize(images01: torch.Tensor) -> torch.Tensor:
    """Map images in ``[0, 1]`` to the model's normalised space."""
    mean, std = _stats(images01)
    return (images01 - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Map normalised images back to ``[0, 1]`` (clamped), e.g. for FID, PSNR and image grids."""
    mean, std = _stats(images)
    return (images * std + mean).clamp(0.0, 1.0)
