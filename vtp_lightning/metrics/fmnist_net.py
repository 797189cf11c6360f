"""The small CNN behind the embedded ``fmnist`` feature extractor.

It lives apart from the extractor so the training script and the loader build exactly the same
network. Change the layers only together with ``FMNIST_NET_ARCHITECTURE`` and retrain: the loader
refuses weights whose recorded architecture differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FMNIST_NET_ARCHITECTURE = "fmnist-cnn-v1"
FMNIST_INPUT_SIZE = 32
FMNIST_NUM_CLASSES = 10
FMNIST_FEATURE_DIM = 192


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FashionMNISTNet(nn.Module):
    """Three pooled conv stages and a feature conv, averaged to 192-d features, one linear head.

    Input: ``(B, 3, H, W)`` in ``[0, 1]`` at any size; it is resized to 32x32 inside, so callers
    never have to know the training resolution. The pooled features play the role Inception's
    2048-d pool3 features play for FID. About 240k parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.Sequential(
            _conv_block(3, 32),
            nn.MaxPool2d(2),  # 16x16
            _conv_block(32, 64),
            nn.MaxPool2d(2),  # 8x8
            _conv_block(64, 96),
            nn.MaxPool2d(2),  # 4x4
            _conv_block(96, FMNIST_FEATURE_DIM),
        )
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(FMNIST_FEATURE_DIM, FMNIST_NUM_CLASSES)

    def features(self, images01: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, 192)``: mean-pooled ReLU activations of the last stage."""
        x = images01
        if x.shape[-2:] != (FMNIST_INPUT_SIZE, FMNIST_INPUT_SIZE):
            x = F.interpolate(x, size=(FMNIST_INPUT_SIZE, FMNIST_INPUT_SIZE), mode="bilinear", antialias=True)
        x = (x - 0.5) / 0.5
        return self.stages(x).mean(dim=(2, 3))

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 10)``."""
        return self.classifier(self.dropout(self.features(images01)))
