"""2-D axial rotary position embedding (RoPE) for patch grids.

Half of each head's channels rotate with the row coordinate, half with the column coordinate, so
attention scores depend on relative 2-D offsets. Grids of any size work (multi-crop views differ in
size), which is why VTP uses RoPE instead of absolute position embeddings.

Two ways to place a grid's positions (``coords``):

- ``index``: integer patch indices, angle = i · inv_freq. One patch is one step whatever the crop's
  size, so a local crop's patches sit at the same spacing as a global crop's.
- ``normalized``: the official VTP / DINOv3 maths (``normalize_coords="separate"``): each axis of the
  crop's own grid is placed on [-1, 1] at the patch centres and scaled by 2π, angle =
  2π · (2(i + 0.5)/n − 1) / period. A 6x6 local crop then spans the same angles as a 16x16 global
  crop. The periods (θ^(k/(d/4)), k < d/4) are a persistent buffer so that a converted checkpoint
  keeps exactly the periods its model was trained with (the released models store them in bf16).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

RopeCoords = Literal["index", "normalized"]


def rope_periods(head_dim: int, theta: float) -> torch.Tensor:
    """``theta ** (k / (head_dim/4))`` for ``k < head_dim/4``, in fp32: one period per rotated pair."""
    quarter = head_dim // 4
    return theta ** (torch.arange(quarter, dtype=torch.float32) / quarter)


class Rope2D(nn.Module):
    """Produces ``(cos, sin)`` tables for an ``h x w`` grid and rotates query/key tensors."""

    def __init__(self, head_dim: int, theta: float = 100.0, coords: RopeCoords = "index") -> None:
        super().__init__()
        if head_dim % 4 != 0:
            raise ValueError(f"2-D RoPE needs a head dimension divisible by 4, got {head_dim}")
        if coords not in ("index", "normalized"):
            raise ValueError(f"unknown RoPE coords {coords!r}; use 'index' or 'normalized'")
        self.coords = coords
        quarter = head_dim // 4
        inv_freq = 1.0 / (theta ** (torch.arange(quarter, dtype=torch.float32) / quarter))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        if coords == "normalized":
            self.register_buffer("periods", rope_periods(head_dim, theta), persistent=True)
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _angles(self, h: int, w: int) -> torch.Tensor:
        device = self.inv_freq.device
        if self.coords == "index":
            ys = torch.arange(h, device=device, dtype=torch.float32)
            xs = torch.arange(w, device=device, dtype=torch.float32)
            ys, xs = torch.meshgrid(ys, xs, indexing="ij")
            return torch.cat([ys.reshape(-1, 1) * self.inv_freq, xs.reshape(-1, 1) * self.inv_freq], dim=-1)
        periods = self.periods.float()
        ys = 2.0 * (torch.arange(0.5, h, device=device, dtype=torch.float32) / h) - 1.0
        xs = 2.0 * (torch.arange(0.5, w, device=device, dtype=torch.float32) / w) - 1.0
        ys, xs = torch.meshgrid(ys, xs, indexing="ij")
        by_row = 2 * math.pi * ys.reshape(-1, 1) / periods
        by_col = 2 * math.pi * xs.reshape(-1, 1) / periods
        return torch.cat([by_row, by_col], dim=-1)

    def tables(self, h: int, w: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``cos, sin`` of shape ``(h*w, head_dim/2)``."""
        # Loading a checkpoint rewrites `periods` in place: its version counter keys the cache.
        normalized = self.coords == "normalized" and not self.periods.is_inference()  # those have no version
        version = self.periods._version if normalized else 0
        key = (h, w, self.inv_freq.device, dtype, version)
        if key not in self._cache:
            angles = self._angles(h, w)
            self._cache[key] = (angles.cos().to(dtype), angles.sin().to(dtype))
        return self._cache[key]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Rotate the last ``h*w`` tokens of ``x`` (..., T, head_dim); prefix tokens (CLS) stay as they are.

    Computed as ``x * C + swap_halves(x) * S`` with full-width tables (``C = [cos, cos]``,
    ``S = [-sin, sin]``, prefix rows ``C = 1, S = 0``): two new tensors and four passes over ``x``
    instead of eight tensors (four products, two sums, two concatenations for the halves and the
    prefix): about half the time of a block's rotation on a CPU, forward and backward. Bit for bit the
    same values (``a + b·(−s)`` is exactly ``a − b·s``; ``x·1 + y·0`` is exactly ``x``).
    """
    full_cos, signed_sin = rotation_tables(cos, sin, num_prefix)
    half = x.shape[-1] // 2
    swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1).mul_(signed_sin)
    return (x * full_cos).add_(swapped)


def rotation_tables(
    cos: torch.Tensor, sin: torch.Tensor, num_prefix: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, head_dim)`` tables of :func:`apply_rope` from the ``(h*w, head_dim/2)`` cos/sin tables."""
    full_cos = torch.cat([cos, cos], dim=-1)
    signed_sin = torch.cat([-sin, sin], dim=-1)
    if num_prefix:
        full_cos = torch.cat([full_cos.new_ones(num_prefix, full_cos.shape[-1]), full_cos])
        signed_sin = torch.cat([signed_sin.new_zeros(num_prefix, signed_sin.shape[-1]), signed_sin])
    return full_cos, signed_sin
