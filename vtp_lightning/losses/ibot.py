"""iBOT masked-patch distillation: student patch predictions at masked positions vs the teacher's."""

from __future__ import annotations

import torch
from torch import nn


class IBOTPatchLoss(nn.Module):
    """Cross-entropy on masked patches, each image weighted equally however many patches it masks.

    The sum is averaged over the images that have masked patches. (DINOv2 divides by every image,
    masked or not, which at ``mask_probability`` 0.5 halves the value; the two differ only by a
    constant factor absorbed by ``mim_weight``.)
    """

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_probs: torch.Tensor,
        sample_index: torch.Tensor,
        num_samples: int,
        student_temp: float,
    ) -> torch.Tensor:
        """
        Args:
            student_logits: ``(M, K)`` for the M masked patches of the batch.
            teacher_probs: ``(M, K)`` teacher targets of the same patches (unmasked teacher input).
            sample_index: ``(M,)`` which image each masked patch belongs to.
            num_samples: images in the batch (those with no masked patch contribute zero).
            student_temp: student softmax temperature.
        """
        if student_logits.shape[0] == 0:
            return student_logits.sum() * 0.0
        ce = -(teacher_probs * torch.log_softmax(student_logits.float() / student_temp, dim=-1)).sum(dim=-1)
        per_image_count = torch.bincount(sample_index, minlength=num_samples).clamp_min(1).float()
        weights = 1.0 / per_image_count[sample_index]
        masked_images = (torch.bincount(sample_index, minlength=num_samples) > 0).sum().clamp_min(1)
        return (ce * weights).sum() / masked_images
