"""DINO projection head shared by the DINO (CLS) and iBOT (patch) losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    """MLP ``D -> hidden -> hidden -> bottleneck``, L2-normalise, then weight-normalised prototypes.

    The prototype layer is bias-free with unit-norm rows (weight norm with the gain fixed to 1, as
    DINO's ``norm_last_layer``), so logits are cosine similarities to K prototypes.
    """

    def __init__(self, in_dim: int, num_prototypes: int, hidden_dim: int = 2048, bottleneck_dim: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        self.prototypes = nn.Parameter(torch.empty(num_prototypes, bottleneck_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        return F.linear(x, F.normalize(self.prototypes, dim=-1))
