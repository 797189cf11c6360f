"""KoLeo regulariser: spread features uniformly by pushing up each point's nearest-neighbour distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KoLeoLoss(nn.Module):
    """``-mean_i log(min_{j != i} ||x_i - x_j||)`` on L2-normalised features (Kozachenko-Leonenko)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(features.float(), dim=-1, eps=self.eps)
        if x.shape[0] < 2:
            return x.sum() * 0.0
        with torch.no_grad():
            sims = x @ x.T
            sims.fill_diagonal_(-2.0)
            nearest = sims.argmax(dim=1)
        distances = (x - x[nearest]).norm(dim=-1)
        return -torch.log(distances + self.eps).mean()
