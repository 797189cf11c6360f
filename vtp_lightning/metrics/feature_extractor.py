"""What every feature extractor for Fréchet / kernel distances looks like.

An extractor is a frozen ``nn.Module`` mapping images ``(B, 3, H, W)`` in ``[0, 1]`` to features
``(B, feature_dim)``. Its ``name`` and ``weights_sha256`` identify it in metric names and in the
reference-statistics cache key, so statistics from different networks can never be mixed.

Metric names: a distance computed with extractor ``x`` is called ``{kind}fd_{x}`` (``rfd_fmnist``,
``gfd_fmnist``), a kernel distance ``{kind}kd_{x}``; Inception's are ``{kind}fid`` and ``{kind}kid``.
The rule lives in :mod:`vtp_lightning.metric_names`, where the report reads it too.
"""

from __future__ import annotations

import torch
from torch import nn

from vtp_lightning.metric_names import distance_metric_name, kernel_metric_name


class FeatureExtractor(nn.Module):
    """Base class: frozen, always in eval mode, checks the input layout."""

    name: str
    feature_dim: int
    weights_sha256: str

    def metric_name(self, kind: str) -> str:
        """Logged name of a distance computed with this extractor; ``kind`` is ``"r"`` or ``"g"``."""
        return distance_metric_name(kind, self.name)

    def kernel_metric_name(self, kind: str) -> str:
        """Logged name of a kernel distance (KID's statistic) with this extractor: ``gkd_fmnist``."""
        return kernel_metric_name(kind, self.name)

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode: a parent's ``.train()`` must never switch batch-norm statistics on."""
        return super().train(False)

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def check_images(images01: torch.Tensor) -> None:
        if images01.ndim != 4 or images01.shape[1] != 3 or not images01.is_floating_point():
            raise ValueError(
                f"feature extractors take float images (B, 3, H, W) in [0, 1], got {images01.dtype} "
                f"{tuple(images01.shape)}; use vtp_lightning.pixels.denormalize first"
            )

    def forward(self, images01: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
