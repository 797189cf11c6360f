"""ViT pixel decoder: latent grid -> normalised pixels (no tanh), as in VTP."""

from __future__ import annotations

import torch
from torch import nn

from vtp_lightning.models.blocks import Block, make_norm
from vtp_lightning.models.rope import Rope2D
from vtp_lightning.models.vit import ViTConfig, _init_linear


class PixelDecoder(nn.Module):
    """1x1 in-projection -> blocks over the token grid (no CLS) -> norm -> 1x1 to 3·p² -> PixelShuffle(p)."""

    def __init__(self, latent_dim: int, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = latent_dim
        p = config.patch_size
        self.proj_in = nn.Conv2d(latent_dim, config.width, kernel_size=1)
        self.rope = Rope2D(config.width // config.heads, theta=config.rope_theta, coords=config.rope_coords)
        self.blocks = nn.ModuleList(
            Block(
                config.width,
                config.heads,
                config.mlp_ratio,
                norm="layer",
                ffn=config.ffn,
                ffn_align=config.ffn_align,
            )
            for _ in range(config.depth)
        )
        self.norm = make_norm("layer", config.width)
        self.proj_out = nn.Conv2d(config.width, 3 * p * p, kernel_size=1)
        self.shuffle = nn.PixelShuffle(p)
        self.apply(_init_linear)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(latents)
        b, d, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        rope = self.rope.tables(h, w, tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens, rope=rope, num_prefix=0)
        tokens = self.norm(tokens)
        x = tokens.transpose(1, 2).reshape(b, d, h, w)
        return self.shuffle(self.proj_out(x))
