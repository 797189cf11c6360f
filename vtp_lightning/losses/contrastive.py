"""Image-text contrastive losses.

Across ranks each rank scores its *local* rows against the *gathered* columns (gathered with
gradient) with labels offset by ``rank * B`` — never the full global matrix on every rank. With
DDP's gradient averaging this gives the same gradients as one process holding the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtp_lightning.distributed import gather_with_grad, rank


class ClipLoss(nn.Module):
    """Symmetric softmax InfoNCE (CLIP) on L2-normalised features."""

    def forward(self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        all_image = gather_with_grad(image)
        all_text = gather_with_grad(text)
        scale = logit_scale.exp()
        logits_per_image = scale * image @ all_text.T
        logits_per_text = scale * text @ all_image.T
        labels = torch.arange(image.shape[0], device=image.device) + rank() * image.shape[0]
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))


class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (SigLIP): each pair is an independent binary decision.

    Normalised per local image row, so the local-rows-vs-gathered-columns split adds up to the
    single-process loss exactly.
    """

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
    ) -> torch.Tensor:
        all_text = gather_with_grad(text)
        logits = logit_scale.exp() * image @ all_text.T + logit_bias
        b = image.shape[0]
        signs = -torch.ones_like(logits)
        cols = torch.arange(b, device=image.device) + rank() * b
        signs[torch.arange(b, device=image.device), cols] = 1.0
        return -F.logsigmoid(signs * logits).sum() / b
