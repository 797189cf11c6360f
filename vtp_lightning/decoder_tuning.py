"""Stage 2: freeze a trained tokenizer's encoder and bottleneck, tune its pixel decoder with a GAN.

VTP trains stage 1 without a GAN (GAN + ViT gave gradient spikes) and then sharpens the decoder
alone: L1 (+ LPIPS) plus a PatchGAN hinge loss with a delayed start and taming's adaptive weight.
Two optimisers (decoder, discriminator) need manual optimisation in Lightning 2.x, which is why this
is a module of its own rather than an option of the stage-1 reconstruction mixin.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from vtp_lightning.always_on import always_on_callbacks
from vtp_lightning.errors import ConfigError
from vtp_lightning.losses.reconstruction import PixelReconstructionLoss
from vtp_lightning.models.discriminator import PatchDiscriminator, hinge_d_loss, hinge_g_loss
from vtp_lightning.objectives.schedules import total_training_steps, warmup_cosine_factor
from vtp_lightning.weights.pretrained import load_autoencoder
from vtp_lightning.weights.provenance import CLASS_KEY, check_written_by, class_path, stamp


class DecoderTuning(pl.LightningModule):
    """Decoder GAN tuning on top of a stage-1 tokenizer (encoder and bottleneck frozen).

    Args:
        tokenizer: the stage-1 tokenizer: a Lightning checkpoint written by ``lightning fit`` or a
            directory written by ``vtp-export``. It must have a pixel decoder.
        lr: peak decoder learning rate (AdamW, warm-up then cosine).
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        warmup_fraction: fraction of steps spent in linear warm-up.
        betas: decoder AdamW betas.
        perceptual_weights: local LPIPS(VGG16) weights file; null = L1 only.
        perceptual_weight: weight of LPIPS relative to L1.
        gan_weight: base weight of the generator loss (multiplied by the adaptive weight).
        disc_start: decoder step at which the discriminator and the GAN loss switch on.
        disc_lr: discriminator learning rate.
        disc_channels: discriminator base width.
        disc_layers: discriminator downsampling layers.
        image_size: training image size (linked from ``data.image_size``; any multiple of the patch).
        patch_size: must equal the tokenizer's patch size (linked from ``data.patch_size``).
    """

    #: the evaluation callbacks for reconstruction and generation apply to this module
    has_trained_decoder = True

    def __init__(
        self,
        *,
        tokenizer: str,
        lr: float = 1e-4,
        min_lr_ratio: float = 0.1,
        warmup_fraction: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.95),
        perceptual_weights: str | None = None,
        perceptual_weight: float = 1.0,
        gan_weight: float = 0.1,
        disc_start: int = 0,
        disc_lr: float = 1e-4,
        disc_channels: int = 64,
        disc_layers: int = 3,
        image_size: int | None = None,
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["image_size", "patch_size"])  # the data module's to record
        self.automatic_optimization = False
        autoencoder = load_autoencoder(tokenizer)
        if autoencoder.decoder is None:
            raise ConfigError(
                f"{tokenizer} has no pixel decoder to tune; give a tokenizer trained with reconstruction"
            )
        self._architecture = autoencoder.architecture()
        own_patch = self._architecture["encoder"]["patch_size"]
        if patch_size is not None and patch_size != own_patch:
            raise ConfigError(
                f"the tokenizer {tokenizer} uses patch_size {own_patch} but the data is cut into "
                f"{patch_size}-pixel patches; set data.patch_size: {own_patch}"
            )
        if image_size is not None and image_size % own_patch:
            raise ConfigError(f"data.image_size {image_size} is not a multiple of the patch size {own_patch}")
        # The same names as a stage-1 tokenizer's, so vtp-export and init_weights read this checkpoint too.
        self.encoder, self.bottleneck, self.decoder = (
            autoencoder.encoder,
            autoencoder.bottleneck,
            autoencoder.decoder,
        )
        self.encoder.requires_grad_(False)
        self.bottleneck.requires_grad_(False)
        self.rec_loss = PixelReconstructionLoss(perceptual_weights, perceptual_weight)
        self.discriminator = PatchDiscriminator(disc_channels, disc_layers)

    # ------------------------------------------------------------------ encode/decode API
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, 3, H, W)`` -> latents ``(B, d, H/p, W/p)`` (frozen encoder)."""
        out = self.encoder(images)
        return self.bottleneck(out["patch"], tuple(out["grid"].tolist()))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> normalised images."""
        return self.decoder(latents)

    def architecture(self) -> dict[str, Any]:
        return dict(self._architecture)

    def train(self, mode: bool = True) -> DecoderTuning:
        """The frozen encoder stays in eval mode (no stochastic depth) while the decoder trains."""
        super().train(mode)
        self.encoder.eval()
        self.bottleneck.eval()
        return self

    # ------------------------------------------------------------------ training
    def _adaptive_gan_weight(self, rec_loss: torch.Tensor, g_loss: torch.Tensor) -> torch.Tensor:
        """Balance the GAN gradient against the reconstruction gradient at the decoder's last layer."""
        last = self.decoder.proj_out.weight
        rec_grad = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        weight = rec_grad.norm() / (g_grad.norm() + 1e-4)
        return weight.clamp(0.0, 1e4).detach() * self.hparams.gan_weight

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        images = batch["image"]
        recon = self.decoder(self.encode(images))
        rec_loss, logs = self.rec_loss(recon, images)
        step = sched_g.last_epoch  # decoder steps taken; restored with the scheduler on resume
        gan_on = step >= self.hparams.disc_start
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

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        images = batch["image"]
        l1 = torch.nn.functional.l1_loss(self.decode(self.encode(images)), images)
        self.log("val/rec_l1", l1, batch_size=images.shape[0])

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        total = total_training_steps(self.trainer)
        warmup = int(hp.warmup_fraction * total)

        def factor(step: int) -> float:
            return warmup_cosine_factor(step, total, warmup, hp.min_lr_ratio)

        opt_g = torch.optim.AdamW(
            self.decoder.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=0.0
        )
        opt_d = torch.optim.AdamW(
            self.discriminator.parameters(), lr=hp.disc_lr, betas=(0.5, 0.9), weight_decay=0.0
        )
        # named for LearningRateMonitor (train/lr_decoder, train/lr_discriminator)
        return [opt_g, opt_d], [
            {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt_g, factor), "name": "train/lr_decoder"},
            {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt_d, factor), "name": "train/lr_discriminator"},
        ]

    def configure_callbacks(self) -> list[pl.Callback]:
        """The guard against a diverged run and the skipped-sample count, whatever callback list the
        config gives (:mod:`vtp_lightning.always_on`)."""
        return always_on_callbacks()

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stamp(checkpoint, self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_written_by(
            checkpoint.get(CLASS_KEY),
            class_path(self),
            "the checkpoint",
            "start stage 2 with model.init_args.tokenizer pointing at a stage-1 checkpoint instead of --ckpt_path",
        )
