"""Turn teacher logits into target distributions: centring (DINO) or Sinkhorn-Knopp (DINOv2 option).

Both see the whole global batch: the centre is all-reduced across ranks, and Sinkhorn's row and
column sums are all-reduced, so every rank computes the same targets as one big process would.
"""

from __future__ import annotations

import math

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
    """Equipartition the teacher's assignments over prototypes (a few Sinkhorn iterations).

    Computed in the log domain: at low teacher temperatures ``exp(logits / T)`` spans more than
    float32's range (at T = 0.02 a logit gap of 2 is a factor e^100), so normalising the exponentials
    underflows or overflows, while normalising their logarithms (logsumexp) stays exact.
    """

    def __init__(self, dim: int, iterations: int = 3) -> None:
        super().__init__()
        self.iterations = iterations
        self.dim = dim

    @torch.no_grad()
    def forward(self, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        log_q = teacher_logits.float() / temperature  # (B, K): log of the unnormalised assignments
        n = all_reduce_sum(torch.tensor([float(log_q.shape[0])], device=log_q.device))
        log_n, log_k = n.log(), math.log(log_q.shape[1])
        for _ in range(self.iterations):
            log_q = log_q - _global_logsumexp_over_batch(log_q) - log_k  # each prototype: mass 1/K
            log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - log_n  # each sample: 1/n
        return (log_q + log_n).exp().to(teacher_logits.dtype)


def _global_logsumexp_over_batch(log_q: torch.Tensor) -> torch.Tensor:
    """``log sum_b exp(log_q[b, k])`` over the rows of every rank, shape ``(1, K)``."""
    if log_q.shape[0]:
        top = log_q.amax(dim=0, keepdim=True)
    else:
        top = log_q.new_full((1, log_q.shape[1]), -math.inf)
    top = all_reduce_max(top)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = all_reduce_sum((log_q - top).exp().sum(dim=0, keepdim=True))
    return total.log() + top


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
    # ``entr`` is -p·log p in one pass (0 at p = 0): iBOT's targets are (masked patches x 65 536) at
    # the paper's size, where a clamped copy, its log and the product cost ~0.5 s of a CPU step.
    probs = targets.float()
    sample = torch.special.entr(probs).sum(dim=-1).mean()
    return {"sample": sample, "batch": torch.special.entr(probs.mean(dim=0)).sum()}
