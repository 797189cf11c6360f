"""Turn teacher logits into target distributions: centring (DINO) or Sinkhorn-Knopp (DINOv2 option).

Both see the whole global batch: the centre is all-reduced across ranks, and Sinkhorn's row and
column sums are all-reduced, so every rank computes the same targets as one big process would.
"""

from __future__ import annotations

import torch
from torch import nn

from vtp_lightning.distributed import all_reduce_max, all_reduce_sum


class CenteredSoftmax(nn.Module):
    """softmax((t - c) / T) with an EMA centre ``c`` over the global batch (a checkpointed buffer).

    The centre starts from the first batch's mean rather than from zero: a zero centre leaves the
    first steps' targets uncentred, and at initialisation every image gets nearly the same teacher
    logits, so those targets all pick the same prototype (the collapse centring exists to prevent).
    """

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))
        self.register_buffer("center_initialized", torch.tensor(False))

    @torch.no_grad()
    def forward(self, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        # None when no rank has a row (e.g. no masked patch anywhere): nothing to learn the centre from
        batch_center = self._global_mean(teacher_logits)
        if batch_center is not None and not bool(self.center_initialized):
            self.set_center(batch_center)
        targets = torch.softmax((teacher_logits - self.center) / temperature, dim=-1)
        if batch_center is not None:
            self.center.mul_(self.momentum).add_(batch_center * (1.0 - self.momentum))
        return targets

    @torch.no_grad()
    def set_center(self, center: torch.Tensor) -> None:
        """Start the EMA from ``center`` (what a first batch, or a test, provides)."""
        self.center.copy_(center)
        self.center_initialized.fill_(True)

    @staticmethod
    def _global_mean(teacher_logits: torch.Tensor) -> torch.Tensor | None:
        total = all_reduce_sum(teacher_logits.float().sum(dim=0, keepdim=True))
        count = all_reduce_sum(torch.tensor([float(teacher_logits.shape[0])], device=teacher_logits.device))
        return None if count.item() == 0 else total / count

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, *args):  # noqa: ANN001
        # Checkpoints written before the flag existed hold a trained centre: count it as initialised.
        key = prefix + "center_initialized"
        if prefix + "center" in state_dict and key not in state_dict:
            state_dict[key] = torch.tensor(True)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, *args)


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


@torch.no_grad()
def target_entropies(targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Collapse diagnostics of teacher targets ``(n, K)`` (DINO tracks both).

    ``sample``: mean entropy of each row — ``log K`` when the targets went uniform, 0 when one-hot.
    ``batch``: entropy of the batch-mean target — near 0 when every row picks the same prototype.
    """
    probs = targets.float().clamp_min(1e-12)
    sample = -(probs * probs.log()).sum(dim=-1).mean()
    mean = probs.mean(dim=0)
    return {"sample": sample, "batch": -(mean * mean.log()).sum()}
