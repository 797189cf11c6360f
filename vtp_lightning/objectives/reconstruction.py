"""ReconstructionMixin: pixels through the d-dim bottleneck and a ViT decoder (L1 + optional LPIPS).

Stage 1 (joint training) uses no GAN: GAN + ViT gave gradient spikes in the paper. Stage 2 (frozen
encoder, decoder tuned with a GAN) is its own module, :class:`vtp_lightning.decoder_tuning.DecoderTuning`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F

from vtp_lightning.losses.reconstruction import PixelReconstructionLoss
from vtp_lightning.models.vit import ViTConfig
from vtp_lightning.objectives.contract import TokenizerMixin
from vtp_lightning.objectives.objective import ObjectiveOutput


class ReconstructionMixin(TokenizerMixin):
    """Pixel reconstruction through the bottleneck, with the pixel decoder it attaches to the autoencoder.

    Args:
        rec_weight: λ_rec (VTP: 0.1); 0 switches the objective off.
        rec_batch_size: images per step used for reconstruction (a random subset; null = whole batch).
        rec_drop_path: stochastic depth of the encoder pass that feeds reconstruction.
        rec_decoder_width: pixel decoder width (null = encoder width).
        rec_decoder_depth: pixel decoder depth (VTP scaling runs: 4).
        rec_decoder_heads: pixel decoder heads (null = encoder heads).
        rec_perceptual_weights: local LPIPS(VGG16) weights file; null = L1 only (no random-weight LPIPS).
        rec_perceptual_weight: weight of LPIPS relative to L1.
    """

    def __init__(
        self,
        *,
        rec_weight: float = 0.1,
        rec_batch_size: int | None = None,
        rec_drop_path: float = 0.0,
        rec_decoder_width: int | None = None,
        rec_decoder_depth: int = 4,
        rec_decoder_heads: int | None = None,
        rec_perceptual_weights: str | None = None,
        rec_perceptual_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        enc = self.encoder_config
        decoder_config = ViTConfig(
            width=rec_decoder_width or enc.width,
            depth=rec_decoder_depth,
            heads=rec_decoder_heads or enc.heads,
            patch_size=enc.patch_size,
            image_size=enc.image_size,
            mlp_ratio=enc.mlp_ratio,
            ffn=enc.ffn,
            rope_theta=enc.rope_theta,
            rope_coords=enc.rope_coords,
            ffn_align=enc.ffn_align,
        )
        self.attach_decoder(decoder_config)
        self.rec_loss = PixelReconstructionLoss(rec_perceptual_weights, rec_perceptual_weight)
        if self.rec_loss.perceptual is None and rec_weight > 0:
            # stacklevel 1 names this module: the caller is whichever mixin precedes this one in the MRO
            warnings.warn(
                "perceptual loss off: no rec_perceptual_weights given, reconstruction uses L1 only",
                stacklevel=1,
            )
        self._rec_batch_size = rec_batch_size
        self._rec_drop_path = rec_drop_path
        self.add_objective("rec", rec_weight, self._rec_objective, validate=self._rec_validate)
        if rec_weight <= 0:
            # Switched off: freeze what only reconstruction trains (no unused trainable parameters).
            self.decoder.requires_grad_(False)
            self.bottleneck.requires_grad_(False)

    # ------------------------------------------------------------------ shared pieces
    def _rec_rows(self, batch: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        images = batch["image"]
        size = self._rec_batch_size
        if size is None or size >= images.shape[0]:
            return "image", images
        index = torch.randperm(images.shape[0], device=images.device)[:size]
        return ("image_rec", index), images[index]

    def _rec_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        key, images = self._rec_rows(batch)
        out = self.encode_cached(key, images, drop_path_rate=self._rec_drop_path)
        latents = self.bottleneck(out["patch"], tuple(out["grid"].tolist()))
        loss, logs = self.rec_loss(self.decoder(latents), images)
        logs["latent_std"] = latents.detach().std(dim=(0, 2, 3)).mean()
        return ObjectiveOutput(loss, logs)

    @torch.no_grad()
    def _rec_validate(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images = batch["image"]
        return {"rec_l1": F.l1_loss(self.decode(self.encode(images)), images)}
