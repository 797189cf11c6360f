"""ReconstructionMixin: pixels through the d-dim bottleneck and a ViT decoder (L1 + optional LPIPS).

Stage 1 (joint training) uses no GAN: GAN + ViT gave gradient spikes in the paper. Stage 2 freezes
the encoder and fine-tunes the decoder with a PatchGAN hinge loss (manual optimisation, delayed
start, adaptive weight).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.discriminator import PatchDiscriminator, hinge_d_loss, hinge_g_loss
from vtp_lightning.models.lpips import LPIPS
from vtp_lightning.models.vit import ViTConfig
from vtp_lightning.objectives.objective import ObjectiveOutput
from vtp_lightning.objectives.schedules import warmup_cosine_factor


class ReconstructionMixin:
    """Pixel reconstruction through the bottleneck.

    Args:
        rec_weight: λ_rec (VTP: 0.1); 0 switches the objective off.
        rec_batch_size: images per step used for reconstruction (a random subset; null = whole batch).
        rec_drop_path: stochastic depth of the encoder pass that feeds reconstruction.
        decoder_width: pixel decoder width (null = encoder width).
        decoder_depth: pixel decoder depth (VTP scaling runs: 4).
        decoder_heads: pixel decoder heads (null = encoder heads).
        perceptual_weights: local LPIPS(VGG16) weights file; null = L1 only (no random-weight LPIPS).
        perceptual_weight: weight of LPIPS relative to L1.
        stage: 1 = joint training; 2 = freeze the encoder and fine-tune the decoder with a GAN.
        gan_weight: stage 2: base weight of the generator loss (multiplied by the adaptive weight).
        disc_start: stage 2: step at which the discriminator and the GAN loss switch on.
        disc_lr: stage 2: discriminator learning rate.
        disc_channels: stage 2: discriminator base width.
        disc_layers: stage 2: discriminator downsampling layers.
    """

    def __init__(
        self,
        *,
        rec_weight: float = 0.1,
        rec_batch_size: int | None = None,
        rec_drop_path: float = 0.0,
        decoder_width: int | None = None,
        decoder_depth: int = 4,
        decoder_heads: int | None = None,
        perceptual_weights: str | None = None,
        perceptual_weight: float = 1.0,
        stage: Literal[1, 2] = 1,
        gan_weight: float = 0.1,
        disc_start: int = 0,
        disc_lr: float = 1e-4,
        disc_channels: int = 64,
        disc_layers: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        enc = self.encoder_config
        self.decoder_config = ViTConfig(
            width=decoder_width or enc.width,
            depth=decoder_depth,
            heads=decoder_heads or enc.heads,
            patch_size=enc.patch_size,
            image_size=enc.image_size,
            mlp_ratio=enc.mlp_ratio,
            ffn=enc.ffn,
        )
        self.decoder = PixelDecoder(self.latent_dim, self.decoder_config)
        self.perceptual = LPIPS.from_file(perceptual_weights) if perceptual_weights else None
        if self.perceptual is None and rec_weight > 0:
            warnings.warn(
                "perceptual loss off: no perceptual_weights given, reconstruction uses L1 only", stacklevel=2
            )
        self._rec = {
            "batch_size": rec_batch_size,
            "drop_path": rec_drop_path,
            "perceptual_weight": perceptual_weight,
            "gan_weight": gan_weight,
            "disc_start": disc_start,
            "disc_lr": disc_lr,
        }
        self.rec_stage = int(stage)
        self.add_objective("rec", rec_weight, self._rec_objective, validate=self._rec_validate)
        if self.rec_stage == 2:
            self.automatic_optimization = False
            self.encoder.requires_grad_(False)
            self.bottleneck.requires_grad_(False)
            self.discriminator = PatchDiscriminator(disc_channels, disc_layers)
        elif self.rec_stage != 1:
            raise ConfigError(f"stage must be 1 or 2, got {stage}")
        elif rec_weight <= 0:
            # Switched off: freeze what only reconstruction trains (no unused trainable parameters).
            self.decoder.requires_grad_(False)
            self.bottleneck.requires_grad_(False)

    # ------------------------------------------------------------------ shared pieces
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, d, h, w)`` -> normalised images ``(B, 3, h*p, w*p)``."""
        return self.decoder(latents)

    def architecture(self) -> dict[str, Any]:
        return {**super().architecture(), "decoder": self.decoder_config.to_dict()}

    def reconstruction_loss(self, recon: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        l1 = F.l1_loss(recon, target)
        logs = {"rec_l1": l1.detach()}
        if self.perceptual is None:
            return l1, logs
        lpips = self.perceptual(recon, target).mean()
        logs["rec_lpips"] = lpips.detach()
        return l1 + self._rec["perceptual_weight"] * lpips, logs

    def _rec_rows(self, batch: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        images = batch["image"]
        size = self._rec["batch_size"]
        if size is None or size >= images.shape[0]:
            return "image", images
        index = torch.randperm(images.shape[0], device=images.device)[:size]
        return ("image_rec", index), images[index]

    def _rec_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        key, images = self._rec_rows(batch)
        out = self.encode_cached(key, images, drop_path_rate=self._rec["drop_path"])
        latents = self.bottleneck(out["patch"], tuple(out["grid"].tolist()))
        loss, logs = self.reconstruction_loss(self.decoder(latents), images)
        logs["latent_std"] = latents.detach().std(dim=(0, 2, 3)).mean()
        return ObjectiveOutput(loss, logs)

    @torch.no_grad()
    def _rec_validate(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images = batch["image"]
        return {"rec_l1": F.l1_loss(self.decode(self.encode(images)), images)}

    # ------------------------------------------------------------------ stage 2: decoder + GAN
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.rec_stage == 2:
            others = [name for name in self.objectives if name != "rec" and self.has_objective(name)]
            if others:
                raise ConfigError(
                    f"stage 2 fine-tunes the decoder only, but {', '.join(others)} are enabled; set their "
                    "weights to 0 or use vtp_lightning.tokenizer.AETokenizer"
                )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.rec_stage != 2:
            return super().training_step(batch, batch_idx)
        return self._stage2_step(batch)

    def _adaptive_gan_weight(self, rec_loss: torch.Tensor, g_loss: torch.Tensor) -> torch.Tensor:
        """Balance the GAN gradient against the reconstruction gradient at the decoder's last layer."""
        last = self.decoder.proj_out.weight
        rec_grad = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        weight = rec_grad.norm() / (g_grad.norm() + 1e-4)
        return weight.clamp(0.0, 1e4).detach() * self._rec["gan_weight"]

    def _stage2_step(self, batch: dict[str, Any]) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        images = batch["image"]
        with torch.no_grad():
            latents = self.encode(images)
        recon = self.decoder(latents)
        rec_loss, logs = self.reconstruction_loss(recon, images)
        step = sched_g.last_epoch  # decoder steps taken; restored with the scheduler on resume
        gan_on = step >= self._rec["disc_start"]
        total = rec_loss
        if gan_on:
            g_loss = hinge_g_loss(self.discriminator(recon))
            gan_weight = self._adaptive_gan_weight(rec_loss, g_loss)
            total = rec_loss + gan_weight * g_loss
            logs.update({"loss_gan_g": g_loss.detach(), "gan_adaptive_weight": gan_weight})
        opt_g.zero_grad()
        self.manual_backward(total)
        opt_g.step()
        sched_g.step()
        if gan_on:
            d_loss = hinge_d_loss(self.discriminator(images), self.discriminator(recon.detach()))
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            sched_d.step()
            logs["loss_gan_d"] = d_loss.detach()
        n = images.shape[0]
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=n)
        self.log("train/loss_rec", rec_loss.detach(), batch_size=n)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=n)
        return total.detach()

    def configure_optimizers(self) -> Any:
        if self.rec_stage != 2:
            return super().configure_optimizers()
        hp = self.hparams
        total = self.total_steps
        warmup = int(hp.warmup_fraction * total)

        def factor(step: int) -> float:
            return warmup_cosine_factor(step, total, warmup, hp.min_lr_ratio)

        opt_g = torch.optim.AdamW(
            self.decoder.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=0.0
        )
        opt_d = torch.optim.AdamW(
            self.discriminator.parameters(), lr=self._rec["disc_lr"], betas=(0.5, 0.9), weight_decay=0.0
        )
        return [opt_g, opt_d], [
            torch.optim.lr_scheduler.LambdaLR(opt_g, factor),
            torch.optim.lr_scheduler.LambdaLR(opt_d, factor),
        ]
