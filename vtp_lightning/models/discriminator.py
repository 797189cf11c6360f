"""PatchGAN discriminator for stage-2 decoder fine-tuning (encoder frozen)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Strided conv stack that scores overlapping patches real/fake (logits map ``(B, 1, h, w)``)."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = channels
        for i in range(1, layers):
            nxt = channels * min(2**i, 8)
            blocks += [
                nn.Conv2d(width, nxt, 4, stride=2, padding=1, bias=False),
                nn.GroupNorm(min(32, nxt // 4), nxt),
                nn.LeakyReLU(0.2, True),
            ]
            width = nxt
        blocks += [nn.Conv2d(width, 1, 3, stride=1, padding=1)]
        self.net = nn.Sequential(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.relu(1.0 - real_logits).mean() + torch.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
