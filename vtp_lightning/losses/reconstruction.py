"""Pixel reconstruction loss: L1 plus, with real VGG weights, LPIPS (VTP's L_rec).

Shared by stage 1 (:class:`~vtp_lightning.objectives.reconstruction.ReconstructionMixin`) and stage 2
(:class:`~vtp_lightning.decoder_tuning.DecoderTuning`), so both optimise the same term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtp_lightning.models.lpips import LPIPS


class PixelReconstructionLoss(nn.Module):
    """``L1 + perceptual_weight * LPIPS``; L1 only when no LPIPS weights file is given.

    Args:
        perceptual_weights: local LPIPS(VGG16) weights file (never a random-weight stand-in).
        perceptual_weight: weight of LPIPS relative to L1.
    """

    def __init__(self, perceptual_weights: str | None = None, perceptual_weight: float = 1.0) -> None:
        super().__init__()
        self.perceptual = LPIPS.from_file(perceptual_weights) if perceptual_weights else None
        self.perceptual_weight = perceptual_weight

    def forward(
        self, recon: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss and its unweighted parts (``rec_l1``, ``rec_lpips``) for logging."""
        l1 = F.l1_loss(recon, target)
        logs = {"rec_l1": l1.detach()}
        if self.perceptual is None:
            return l1, logs
        lpips = self.perceptual(recon, target).mean()
        logs["rec_lpips"] = lpips.detach()
        return l1 + self.perceptual_weight * lpips, logs
