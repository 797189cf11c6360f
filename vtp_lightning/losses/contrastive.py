"""Image-text contrastive losses: open_clip's ``ClipLoss`` and ``SigLipLoss``, called the way VTP needs.

Across ranks each rank scores its *local* rows against the *gathered* columns (gathered with
gradient, labels offset by ``rank * B``): open_clip's ``local_loss=True, gather_with_grad=True``.
With DDP's gradient averaging this gives the same gradients as one process holding the whole batch.

These wrappers exist for one reason: open_clip fixes rank and world size when the loss is built,
which is before Lightning starts the process group, so they are read at each call instead. They
also take the *log* temperature (the trainable parameter), as the rest of the suite does.
"""

from __future__ import annotations

import torch
from open_clip.loss import ClipLoss as OpenClipLoss
from open_clip.loss import SigLipLoss as OpenSigLipLoss
from torch import nn

from vtp_lightning.distributed import rank, world_size


class ClipLoss(nn.Module):
    """Symmetric softmax InfoNCE (CLIP) on L2-normalised features; ``logit_scale`` is the log scale."""

    def forward(self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        loss = OpenClipLoss(local_loss=True, gather_with_grad=True, rank=rank(), world_size=world_size())
        return loss(image, text, logit_scale.exp())


class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (SigLIP): each pair an independent binary decision, summed per image row.

    Across ranks every rank's text features are all-gathered with gradient (open_clip's ``gather``
    exchange, which any backend supports, gloo included).
    """

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
    ) -> torch.Tensor:
        loss = OpenSigLipLoss(rank=rank(), world_size=world_size(), dist_impl="gather")
        return loss(image, text, logit_scale.exp(), logit_bias)
