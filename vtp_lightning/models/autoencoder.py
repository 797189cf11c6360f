"""VTPAutoencoder: the inference half of a trained tokenizer (encoder, bottleneck, pixel decoder).

This is what a diffusion model uses: ``encode(images) -> latents`` and ``decode(latents) -> images``.
:class:`~vtp_lightning.objectives.base.TokenizerModule` holds one and registers its parts under the
same names (``encoder.*``, ``bottleneck.*``, ``decoder.*``), so weights move between the two, and
into exported files, without renaming.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.vit import Bottleneck, ViTConfig, ViTEncoder


class VTPAutoencoder(nn.Module):
    """ViT encoder -> bias-free bottleneck -> latents, and optionally a pixel decoder back."""

    def __init__(self, encoder: ViTConfig, latent_dim: int, decoder: ViTConfig | None = None) -> None:
        super().__init__()
        self.encoder_config, self.latent_dim = encoder, latent_dim
        self.encoder = ViTEncoder(encoder)
        self.bottleneck = Bottleneck(encoder.width, latent_dim)
        self.decoder_config: ViTConfig | None = None
        self.decoder: PixelDecoder | None = None
        if decoder is not None:
            self.attach_decoder(decoder)

    def attach_decoder(self, config: ViTConfig) -> PixelDecoder:
        """Add the pixel decoder (a tokenizer's reconstruction objective does, once)."""
        if self.decoder is not None:
            raise ConfigError("this autoencoder already has a pixel decoder")
        self.decoder_config = config
        self.decoder = PixelDecoder(self.latent_dim, config)
        return self.decoder

    @classmethod
    def from_architecture(cls, arch: dict[str, Any]) -> VTPAutoencoder:
        decoder = ViTConfig(**arch["decoder"]) if arch.get("decoder") else None
        return cls(ViTConfig(**arch["encoder"]), int(arch["latent_dim"]), decoder)

    def architecture(self) -> dict[str, Any]:
        """What :meth:`from_architecture` (and ``from_pretrained``) needs to rebuild this model."""
        return architecture_dict(self.encoder_config, self.latent_dim, self.decoder_config)

    def own_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors of ``state`` (e.g. a whole tokenizer's state dict) that this model has."""
        return {k: state[k] for k in self.state_dict() if k in state}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, 3, H, W)`` in [-1, 1] -> latents ``(B, d, H/p, W/p)``."""
        patch = self.encoder_config.patch_size
        if images.ndim != 4 or images.shape[-2] % patch or images.shape[-1] % patch:
            # the patch convolution would silently drop the remainder rows and columns
            raise ConfigError(
                f"images of shape {tuple(images.shape)} cannot be encoded: expected (B, 3, H, W) with H and "
                f"W multiples of the patch size {patch}; resize or pad them"
            )
        out = self.encoder(images)
        return self.bottleneck(out["patch"], tuple(out["grid"].tolist()))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> normalised images (no tanh; clamp or ``denormalize`` for display)."""
        if self.decoder is None:
            raise RuntimeError("this tokenizer was exported without a pixel decoder")
        return self.decoder(latents)


def architecture_dict(encoder: ViTConfig, latent_dim: int, decoder: ViTConfig | None) -> dict[str, Any]:
    """The architecture record of checkpoints and exports: encoder, latent width, decoder (or None)."""
    return {
        "encoder": encoder.to_dict(),
        "latent_dim": latent_dim,
        "decoder": decoder.to_dict() if decoder is not None else None,
    }


def with_config_defaults(arch: dict[str, Any]) -> dict[str, Any]:
    """``arch`` with every :class:`ViTConfig` field spelled out (defaults for fields it predates)."""
    out = dict(arch)
    for part in ("encoder", "decoder"):
        if out.get(part):
            out[part] = ViTConfig(**out[part]).to_dict()
    return out
