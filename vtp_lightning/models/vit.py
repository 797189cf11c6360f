"""The VTP encoder: a ViT with RMSNorm, SwiGLU, 2-D RoPE, one CLS token and a learned mask token.

Presets follow the paper (S/B/L) plus ``tiny`` for CPU runs. The encoder returns normed features;
the bottleneck (a bias-free linear map to the latent width) sits on top of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
from torch import nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.blocks import Block, make_norm
from vtp_lightning.models.rope import Rope2D, RopeCoords

DropPathSchedule = Literal["linear", "uniform"]

ENCODER_PRESETS: dict[str, tuple[int, int, int]] = {
    # name: (width, depth, heads)
    "tiny": (192, 6, 3),
    "S": (384, 12, 6),
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
}


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a ViT encoder or pixel decoder (everything needed to rebuild it).

    ``rope_coords``, ``norm_eps`` and ``ffn_align`` select the official VTP maths (``normalized``,
    1e-5, 8) or this suite's earlier defaults (``index``, 1e-6, 0); see :mod:`vtp_lightning.models.rope`.
    ``norm_eps`` is the encoder norm's epsilon (the pixel decoder's LayerNorm keeps 1e-6, as officially).
    """

    width: int = 192
    depth: int = 6
    heads: int = 3
    patch_size: int = 4
    image_size: int = 32
    mlp_ratio: float = 4.0
    norm: Literal["rms", "layer"] = "rms"
    ffn: Literal["swiglu", "gelu"] = "swiglu"
    pos_embed: Literal["rope", "absolute"] = "rope"
    rope_theta: float = 100.0
    rope_coords: RopeCoords = "index"
    norm_eps: float = 1e-6
    ffn_align: int = 0

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ConfigError(
                f"width {self.width} is not divisible by {self.heads} heads; change width or heads"
            )
        if self.pos_embed == "rope" and (self.width // self.heads) % 4:
            raise ConfigError(
                f"2-D RoPE needs a head width (width/heads = {self.width // self.heads}) divisible by 4; "
                "change width or heads"
            )
        if self.rope_coords not in ("index", "normalized"):
            raise ConfigError(f"unknown rope_coords {self.rope_coords!r}; use 'index' or 'normalized'")
        if self.ffn_align < 0:
            raise ConfigError(f"ffn_align must be 0 (no rounding) or positive, got {self.ffn_align}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )

    @classmethod
    def preset(cls, name: str, **overrides: object) -> ViTConfig:
        if name not in ENCODER_PRESETS:
            raise ConfigError(f"unknown encoder preset {name!r}; choose one of {sorted(ENCODER_PRESETS)}")
        width, depth, heads = ENCODER_PRESETS[name]
        base = cls(width=width, depth=depth, heads=heads)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def grid_of(self, size: tuple[int, int] | torch.Size) -> tuple[int, int]:
        """Patch grid ``(h, w)`` of an image of ``size`` ``(H, W)`` (the patch embedding's output)."""
        return size[0] // self.patch_size, size[1] // self.patch_size


class ViTEncoder(nn.Module):
    """Patchify -> [CLS] + patch tokens -> blocks -> final norm."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = nn.Conv2d(3, c.width, kernel_size=c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.width))
        # Only masked image modeling uses the mask token, so it is frozen until MIM unfreezes it: a
        # trainable parameter that gets no gradient would break DDP (find_unused_parameters=False).
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.width), requires_grad=False)
        if c.pos_embed == "absolute":
            self.pos_embed = nn.Parameter(torch.zeros(1, c.grid * c.grid, c.width))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            self.rope = None
        else:
            self.pos_embed = None
            self.rope = Rope2D(c.width // c.heads, theta=c.rope_theta, coords=c.rope_coords)
        self.blocks = nn.ModuleList(
            Block(c.width, c.heads, c.mlp_ratio, c.norm, c.ffn, c.norm_eps, c.ffn_align)
            for _ in range(c.depth)
        )
        self.norm = make_norm(c.norm, c.width, c.norm_eps)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init_linear)

    @property
    def width(self) -> int:
        return self.config.width

    def _absolute_positions(self, h: int, w: int) -> torch.Tensor:
        g = self.config.grid
        pos = self.pos_embed
        if (h, w) != (g, g):
            grid = pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
            grid = nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            pos = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return pos

    def forward(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        drop_path_rate: float = 0.0,
        drop_path_schedule: DropPathSchedule = "linear",
        patch_rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode normalised images.

        Args:
            images: ``(B, 3, H, W)`` with H, W multiples of the patch size.
            masks: optional ``(B, H/p, W/p)`` bool; True patches are replaced by the mask token (iBOT).
            drop_path_rate: stochastic depth of this pass.
            drop_path_schedule: ``linear``: the rate rises from 0 at the first block to ``drop_path_rate``
                at the last (DINOv2's default); ``uniform``: every block drops at ``drop_path_rate`` (the
                official VTP code, DINOv2's large configs), which computes less at the same rate.
            patch_rows: optional ``(B, N)`` bool, the only patch tokens the caller reads (e.g. iBOT's
                masked patches; none for a CLS-only loss). The last block's FFN and the final norm then
                run on the CLS tokens and these rows alone (:meth:`Block.forward` with ``selected``).

        Returns:
            ``cls`` (B, D) and ``patch`` (B, N, D) after the final norm, and ``grid`` (h, w); with
            ``patch_rows``, ``patch_rows`` (M, D) in ``patch_rows.nonzero()`` order instead of ``patch``.
        """
        x = self.patch_embed(images)
        b, d, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        if masks is not None:
            x = torch.where(masks.reshape(b, h * w, 1), self.mask_token.to(x.dtype), x)
        if self.pos_embed is not None:
            x = x + self._absolute_positions(h, w)
        rope = self.rope.tables(h, w, x.dtype) if self.rope is not None else None
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        rates = drop_path_rates(drop_path_rate, len(self.blocks), drop_path_schedule)
        last = len(self.blocks) - 1 if patch_rows is not None else len(self.blocks)
        for block, rate in zip(self.blocks[:last], rates[:last]):
            x = block(x, rope=rope, num_prefix=1, drop_rate=rate)
        grid = torch.tensor([h, w])
        if patch_rows is None:
            x = self.norm(x)
            return {"cls": x[:, 0], "patch": x[:, 1:], "grid": grid}
        if patch_rows.shape != (b, h * w):
            raise ConfigError(f"patch_rows has shape {tuple(patch_rows.shape)}; expected {(b, h * w)}")
        selected = torch.cat([patch_rows.new_ones(b, 1), patch_rows.bool()], dim=1)
        rows = self.norm(
            self.blocks[last](x, rope=rope, num_prefix=1, drop_rate=rates[last], selected=selected)
        )
        is_cls = selected.nonzero()[:, 1] == 0  # each sample's rows: its CLS first, then its patches
        return {"cls": rows[is_cls], "patch_rows": rows[~is_cls], "grid": grid}


def drop_path_rates(rate: float, depth: int, schedule: DropPathSchedule) -> list[float]:
    """The stochastic-depth rate of each of ``depth`` blocks under ``schedule`` (see ``ViTEncoder.forward``)."""
    if schedule == "uniform":
        return [rate] * depth
    if schedule == "linear":
        return [rate * i / max(depth - 1, 1) for i in range(depth)]
    raise ConfigError(f"unknown drop_path_schedule {schedule!r}; use 'linear' or 'uniform'")


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Bottleneck(nn.Module):
    """Bias-free token-wise ``Linear(D -> d)``: deterministic, no KL, no noise (VTP f16d64 uses d = 64)."""

    def __init__(self, width: int, latent_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, latent_dim, bias=False)
        nn.init.trunc_normal_(self.proj.weight, std=0.02)

    def forward(self, patch_tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, N, D)`` normed patch tokens -> latent ``(B, d, h, w)``."""
        h, w = grid
        z = self.proj(patch_tokens)
        return z.transpose(1, 2).reshape(z.shape[0], -1, h, w)
