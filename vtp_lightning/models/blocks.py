"""Pre-norm transformer block with per-call stochastic depth and optional 2-D RoPE.

Stochastic depth runs each residual branch only on the samples it keeps
(:mod:`vtp_lightning.models.stochastic_depth`).

The drop rate is an argument of ``forward`` rather than a fixed module attribute because VTP uses
a different rate for each objective's pass through the same encoder (CLIP, SSL, reconstruction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp, RmsNormFp32, SwiGLU
from torch import nn

from vtp_lightning.models.rope import apply_rope
from vtp_lightning.models.stochastic_depth import add_residual_on_kept_rows, add_residual_on_kept_samples


def make_norm(kind: str, dim: int, eps: float = 1e-6) -> nn.Module:
    """RMSNorm (computed in fp32 whatever the autocast dtype, as the official VTP code) or LayerNorm."""
    if kind == "rms":
        return RmsNormFp32(dim, eps=eps)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; use 'rms' or 'layer'")


def make_ffn(kind: str, dim: int, mlp_ratio: float, align: int = 0) -> nn.Module:
    """SwiGLU or GELU MLP. ``align`` > 0 rounds the SwiGLU hidden width up to a multiple of it
    (the official VTP models use 8: ViT-L's 2730 becomes 2736)."""
    if kind == "swiglu":
        # 2/3 of the GELU hidden size keeps the parameter count of a 4x GELU MLP.
        hidden = int(dim * mlp_ratio * 2 / 3)
        return SwiGLU(dim, hidden_features=hidden, align_to=align)
    if kind == "gelu":
        return Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
    raise ValueError(f"unknown ffn {kind!r}; use 'swiglu' or 'gelu'")


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, num_prefix: int
    ) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if rope is not None:
            # Separately, not stacked: on glibc a tensor over 32 MiB is a fresh mmap (page faults on
            # every call), and a stacked (q, k) at the paper's crop batch crosses that line.
            q = apply_rope(q, *rope, num_prefix=num_prefix)
            k = apply_rope(k, *rope, num_prefix=num_prefix)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        norm: str = "rms",
        ffn: str = "swiglu",
        norm_eps: float = 1e-6,
        ffn_align: int = 0,
    ):
        super().__init__()
        self.norm1 = make_norm(norm, dim, norm_eps)
        self.attn = Attention(dim, heads)
        self.norm2 = make_norm(norm, dim, norm_eps)
        self.mlp = make_ffn(ffn, dim, mlp_ratio, ffn_align)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        num_prefix: int = 0,
        drop_rate: float = 0.0,
        selected: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``; with ``selected`` ``(B, T)`` bool, only the selected tokens'
        outputs, ``(M, D)`` in ``selected.nonzero()`` order.

        Sample-level stochastic depth: each branch runs only on the samples it keeps, as in DINOv2.
        With ``selected``, every token is still a key and value of the attention, so attention runs
        on all of them; the FFN, token-wise, runs on the selected rows alone. Same values as
        ``forward(x)[selected]`` and the same stochastic-depth draws (one over samples per branch).
        (One ``forward`` rather than a second method, so wrappers hooking ``forward``, e.g. FSDP's
        unsharding, see this call too.)
        """
        x = add_residual_on_kept_rows(
            x, lambda rows: self.attention_branch(rows, rope, num_prefix), drop_rate, self.training
        )
        if selected is None:
            return add_residual_on_kept_rows(x, self.ffn_branch, drop_rate, self.training)
        sample_of_row = selected.nonzero()[:, 0]
        return add_residual_on_kept_samples(
            x[selected], sample_of_row, x.shape[0], self.ffn_branch, drop_rate, self.training
        )

    def attention_branch(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, num_prefix: int
    ) -> torch.Tensor:
        return self.attn(self.norm1(x), rope, num_prefix)

    def ffn_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm2(x))
