"""Turn teacher logits into target distributions: centring (DINO) or Sinkhorn-Knopp (DINOv2 option).

Both see the whole global batch: the centre is all-reduced across ranks, and Sinkhorn's row and
column sums are all-reduced, so every rank computes the same targets as one big process would.
"""

from __future__ import annotations

import torch
from torch import nn

from vtp_lightning.distributed import all_reduce_max, all_reduce_sum


class CenteredSoftmax(nn.Module):
    """softmax((t - c) / T) with an EMA centre ``c`` over the global batch (a checkpointed buffer)."""

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))

    @torch.no_grad()
    def forward(self, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        targets = torch.softmax((teacher_logits - self.center) / temperature, dim=-1)
        self.update(teacher_logits)
        return targets

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor) -> None:
        total = all_reduce_sum(teacher_logits.float().sum(dim=0, keepdim=True))
        count = all_reduce_sum(torch.tensor([float(teacher_logits.shape[0])], device=teacher_logits.device))
        if count.item() == 0:  # e.g. no masked patch anywhere this step: nothing to learn the centre from
            return
        batch_center = total / count
        self.center.mul_(self.momentum).add_(batch_center * (1.0 - self.momentum))


class SinkhornKnopp(nn.Module):
    """Equipartition the teacher's assignments over prototypes (a few Sinkhorn iterations)."""

    def __init__(self, dim: int, iterations: int = 3) -> None:
        super().__init__()
        self.iterations = iterations
        self.dim = dim

    @torch.no_grad()
    def forward(self, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        logits = teacher_logits.float()
        # A global (not per-rank) max keeps exp() finite without changing the normalised result.
        q = torch.exp((logits - all_reduce_max(logits.max().detach().clone())) / temperature).T  # (K, B)
        n = all_reduce_sum(torch.tensor([float(q.shape[1])], device=q.device))
        q /= all_reduce_sum(q.sum()).clamp_min(1e-12)
        k = q.shape[0]
        for _ in range(self.iterations):
            q /= all_reduce_sum(q.sum(dim=1, keepdim=True)).clamp_min(1e-12)
            q /= k
            q /= q.sum(dim=0, keepdim=True).clamp_min(1e-12)
            q /= n
        return (q * n).T.to(teacher_logits.dtype)


def make_teacher_targets(kind: str, dim: int, center_momentum: float) -> nn.Module:
    if kind == "centering":
        return CenteredSoftmax(dim, momentum=center_momentum)
    if kind == "sinkhorn":
        return SinkhornKnopp(dim)
    raise ValueError(f"unknown teacher target mode {kind!r}; use 'centering' or 'sinkhorn'")
