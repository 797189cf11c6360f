"""A LightningDiT-style class-conditional diffusion transformer on tokenizer latents.

gFID measures how easy a tokenizer's latent space is to *generate*: the same DiT spec is trained on
every tokenizer's latents, so only the tokenizer changes. The network follows LightningDiT (DiT with
RMSNorm, SwiGLU and 2-D RoPE): latents ``(B, C, h, w)`` are cut into ``p x p`` patches (``p = 1`` for
f16 latents), run through transformer blocks modulated by adaLN-Zero from the timestep embedding
plus the class embedding, and mapped back to ``(B, C, h, w)``. A learned null class (index
``num_classes``) serves classifier-free guidance; labels ``< 0`` (unknown class) also map to it.

Plain ``nn.Module``: no Lightning here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import GluMlp
from torch import Tensor, nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.blocks import Attention
from vtp_lightning.models.rope import Rope2D


@dataclass(frozen=True)
class DiTSpec:
    """Size of a DiT. Held fixed across tokenizers so that gFIDs are comparable."""

    depth: int
    width: int
    heads: int
    patch_size: int = 1
    mlp_ratio: float = 4.0
    class_dropout: float = 0.1


DIT_PRESETS: dict[str, DiTSpec] = {
    # CPU-sized: trains ~300 steps of batch 64 on 64x8x8 latents in well under a minute on 2 cores.
    "tiny": DiTSpec(depth=4, width=128, heads=4),
    "S": DiTSpec(depth=12, width=384, heads=6),
    # LightningDiT-B / -XL with patch 1 on f16 latents (the paper's scaling runs / headline numbers).
    "B": DiTSpec(depth=12, width=768, heads=12),
    "L": DiTSpec(depth=24, width=1024, heads=16),
    "XL": DiTSpec(depth=28, width=1152, heads=16),
}


def dit_spec(name: str) -> DiTSpec:
    """The preset called ``name``; a ConfigError lists the known ones."""
    if name not in DIT_PRESETS:
        raise ConfigError(f"unknown DiT preset {name!r}; choose one of {sorted(DIT_PRESETS)}")
    return DIT_PRESETS[name]


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: a per-sample affine of the normalised tokens (``scale`` around 1)."""
    return torch.addcmul(shift, x, 1 + scale)


def swiglu(width: int, mlp_ratio: float) -> nn.Module:
    """timm's gated MLP as SwiGLU with one fused input projection (one matmul for gate and value);
    the hidden width is 2/3 of a GELU MLP's (same parameter count), rounded up to a multiple of 8."""
    hidden = 8 * math.ceil(2 * mlp_ratio * width / 3 / 8)
    return GluMlp(width, hidden_features=2 * hidden, act_layer=nn.SiLU, gate_last=False)


class DiTBlock(nn.Module):
    """Pre-norm transformer block; adaLN-Zero gives per-sample shift, scale and a zero-initialised gate."""

    def __init__(self, spec: DiTSpec) -> None:
        super().__init__()
        self.norm_attn = nn.RMSNorm(spec.width, eps=1e-6, elementwise_affine=False)
        if spec.width % spec.heads:
            raise ConfigError(f"DiT width {spec.width} is not divisible by its {spec.heads} heads")
        self.attn = Attention(spec.width, spec.heads)  # the tokenizer's RoPE attention
        self.norm_mlp = nn.RMSNorm(spec.width, eps=1e-6, elementwise_affine=False)
        self.mlp = swiglu(spec.width, spec.mlp_ratio)
        self.modulation = nn.Linear(spec.width, 6 * spec.width)

    def forward(self, x: Tensor, condition: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        modulation = self.modulation(condition)[:, None]  # (B, 1, 6 * width): one set per sample
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation.chunk(6, dim=-1)
        x = torch.addcmul(x, gate_a, self.attn(_modulate(self.norm_attn(x), shift_a, scale_a), (cos, sin), 0))
        return torch.addcmul(x, gate_m, self.mlp(_modulate(self.norm_mlp(x), shift_m, scale_m)))


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of ``1000 * t`` (t in [0, 1]) through an MLP.

    The factor 1000 spreads t over the sinusoid's frequency range as for a 1000-step DDPM.
    """

    def __init__(self, width: int, frequency_dim: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: Tensor) -> Tensor:
        half = self.frequency_dim // 2
        exponents = torch.arange(half, dtype=torch.float32, device=t.device) / half
        angles = 1000.0 * t.float()[:, None] * torch.exp(-math.log(self.max_period) * exponents)
        return self.mlp(torch.cat((angles.cos(), angles.sin()), dim=-1).to(self.mlp[0].weight.dtype))


class FinalLayer(nn.Module):
    """adaLN (shift and scale only) then a zero-initialised projection to patch pixels."""

    def __init__(self, width: int, patch_values: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(width, eps=1e-6, elementwise_affine=False)
        self.modulation = nn.Linear(width, 2 * width)
        self.linear = nn.Linear(width, patch_values)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        shift, scale = self.modulation(condition)[:, None].chunk(2, dim=-1)
        return self.linear(_modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Class-conditional velocity network ``v(x_t, t, label)`` with output shape = input shape.

    Args:
        in_channels: latent channels ``C``.
        num_classes: real classes; index ``num_classes`` is the learned null class (0 classes =
            unconditional: every label maps to the null class).
        spec: a :class:`DiTSpec` or a preset name from :data:`DIT_PRESETS`.
        latent_size: the ``(h, w)`` the model is meant for; samplers use it as their default shape.
            RoPE makes the network itself work on any grid divisible by the patch size.
        rope_theta: RoPE base period; 100 (as the encoder) suits latent grids of 8-32 positions.
        init_generator: draws every initial weight from this generator instead of the global RNG,
            so the gFID protocol can give every tokenizer the same DiT initialisation.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        spec: DiTSpec | str = "tiny",
        latent_size: tuple[int, int] = (16, 16),
        rope_theta: float = 100.0,
        init_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.spec = dit_spec(spec) if isinstance(spec, str) else spec
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.latent_size = tuple(latent_size)
        width, patch = self.spec.width, self.spec.patch_size
        self.patch_embed = nn.Linear(in_channels * patch * patch, width)
        self.time_embed = TimestepEmbedding(width)
        self.class_embed = nn.Embedding(num_classes + 1, width)
        if (width // self.spec.heads) % 4:
            raise ConfigError(f"2-D RoPE needs a head width divisible by 4; {width}/{self.spec.heads} is not")
        self.rope = Rope2D(width // self.spec.heads, theta=rope_theta)
        self.blocks = nn.ModuleList(DiTBlock(self.spec) for _ in range(self.spec.depth))
        self.final = FinalLayer(width, in_channels * patch * patch)
        self._init_weights(init_generator)

    @property
    def null_class(self) -> int:
        """The label index of the learned unconditional embedding."""
        return self.num_classes

    def _init_weights(self, generator: torch.Generator | None = None) -> None:
        """DiT's init: Xavier linears, small embeddings, and adaLN-Zero so every block starts as identity.

        Every parameter is overwritten here, so with a ``generator`` the initial weights depend on it alone.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.class_embed.weight, std=0.02, generator=generator)
        for layer in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02, generator=generator)
        zero_init = [block.modulation for block in self.blocks]
        zero_init += [self.final.modulation, self.final.linear]
        for layer in zero_init:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def drop_labels(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Replace each label by the null class with probability ``spec.class_dropout`` (CFG training)."""
        drop = torch.rand(labels.shape, generator=generator, device=labels.device) < self.spec.class_dropout
        return torch.where(drop, torch.full_like(labels, self.null_class), labels)

    def forward(
        self, x: Tensor, t: Tensor, labels: Tensor, label_generator: torch.Generator | None = None
    ) -> Tensor:
        """Velocity for latents ``x (B, C, h, w)`` at times ``t (B,)`` in [0, 1] and ``labels (B,)``.

        In training mode labels are dropped to the null class with probability ``spec.class_dropout``
        (drawn from ``label_generator`` when given, for reproducible runs).
        """
        patch = self.spec.patch_size
        height, width = x.shape[-2:]
        if height % patch or width % patch:
            raise ConfigError(f"latent grid {height}x{width} is not divisible by the DiT patch size {patch}")
        grid_h, grid_w = height // patch, width // patch
        labels = torch.where(labels < 0, torch.full_like(labels, self.null_class), labels)
        if self.training and self.spec.class_dropout > 0:
            labels = self.drop_labels(labels, label_generator)
        condition = F.silu(self.time_embed(t) + self.class_embed(labels))
        tokens = self.patch_embed(rearrange(x, "b c (h p) (w r) -> b (h w) (p r c)", p=patch, r=patch))
        cos, sin = self.rope.tables(grid_h, grid_w, tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens, condition, cos, sin)
        out = self.final(tokens, condition)
        return rearrange(out, "b (h w) (p r c) -> b c (h p) (w r)", h=grid_h, p=patch, r=patch)
