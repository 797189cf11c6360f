"""2-D axial rotary position embedding (RoPE) for patch grids.

Half of each head's channels rotate with the row index, half with the column index, so attention
scores depend on relative 2-D offsets. Grids of any size work (multi-crop views differ in size),
which is why VTP uses RoPE instead of absolute position embeddings.
"""

from __future__ import annotations

import torch
from torch import nn


class Rope2D(nn.Module):
    """Produces ``(cos, sin)`` tables for an ``h x w`` grid and rotates query/key tensors."""

    def __init__(self, head_dim: int, theta: float = 100.0) -> None:
        super().__init__()
        if head_dim % 4 != 0:
            raise ValueError(f"2-D RoPE needs a head dimension divisible by 4, got {head_dim}")
        quarter = head_dim // 4
        inv_freq = 1.0 / (theta ** (torch.arange(quarter, dtype=torch.float32) / quarter))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: dict[tuple[int, int, torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, h: int, w: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``cos, sin`` of shape ``(h*w, head_dim/2)``."""
        key = (h, w, self.inv_freq.device, dtype)
        if key not in self._cache:
            ys, xs = torch.meshgrid(
                torch.arange(h, device=self.inv_freq.device, dtype=torch.float32),
                torch.arange(w, device=self.inv_freq.device, dtype=torch.float32),
                indexing="ij",
            )
            angles = torch.cat([ys.reshape(-1, 1) * self.inv_freq, xs.reshape(-1, 1) * self.inv_freq], dim=-1)
            self._cache[key] = (angles.cos().to(dtype), angles.sin().to(dtype))
        return self._cache[key]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Rotate the last ``h*w`` tokens of ``x`` (B, heads, T, head_dim); prefix tokens (CLS) stay as they are."""
    prefix, tokens = x[:, :, :num_prefix], x[:, :, num_prefix:]
    half = tokens.shape[-1] // 2
    t1, t2 = tokens[..., :half], tokens[..., half:]
    rotated = torch.cat([t1 * cos - t2 * sin, t1 * sin + t2 * cos], dim=-1)
    return torch.cat([prefix, rotated], dim=2)
