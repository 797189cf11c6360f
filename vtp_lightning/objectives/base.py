"""TokenizerModule: the base every objective mixin plugs into.

It owns what all objectives share — a :class:`~vtp_lightning.models.autoencoder.VTPAutoencoder`
(the ViT encoder, its latent bottleneck and, with reconstruction, the pixel decoder), the EMA teacher
service, the optimiser and learning-rate schedule — and logs the step's loss terms. It knows nothing
about any particular objective: a mixin registers itself with :meth:`add_objective` and asks for
services (:meth:`require_teacher`, :meth:`encode_cached`, :meth:`add_after_optimizer_step`); the
services are listed in :mod:`vtp_lightning.objectives.contract`.

Each job beyond the services lives in its own file, called from the Lightning hooks here: the loss
loop in :mod:`~vtp_lightning.objectives.training_step` (shared with the bench), the optimiser in
:mod:`~vtp_lightning.objectives.optimizer_groups`, weights and checkpoint checks in
:mod:`~vtp_lightning.objectives.weights_loading`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

from vtp_lightning.always_on import always_on_callbacks
from vtp_lightning.data.resumable import seed_training_step
from vtp_lightning.errors import ConfigError
from vtp_lightning.fsdp.configure import shard_for_strategy
from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.models.compile import compile_block_branches
from vtp_lightning.models.decoder import PixelDecoder
from vtp_lightning.models.vit import DropPathSchedule, ViTConfig, drop_path_rates
from vtp_lightning.objectives.ema_teacher import EMATeacher
from vtp_lightning.objectives.inference_steps import (
    encode_for_prediction,
    load_standalone_init_weights,
    log_objective_scores,
)
from vtp_lightning.objectives.objective import Objective, ObjectiveOutput
from vtp_lightning.objectives.optimizer_groups import adamw_warmup_cosine, clip_unscaled_gradients
from vtp_lightning.objectives.schedules import cosine_ramp, total_training_steps
from vtp_lightning.objectives.training_step import objective_losses
from vtp_lightning.objectives.weights_loading import (
    check_checkpoint_matches,
    load_matching_weights,
    migrated_checkpoint,
)
from vtp_lightning.option_checks import check_model_options
from vtp_lightning.renamed_options import declared_options
from vtp_lightning.weights.checkpoint_file import SAFE_GLOBALS
from vtp_lightning.weights.provenance import stamp

FeatureSource = Literal["student", "teacher"]


class TokenizerModule(pl.LightningModule):
    """Shared autoencoder (encoder + bottleneck [+ decoder]), EMA teacher service, optimiser, and the
    weighted-loss loop.

    Design: the :class:`VTPAutoencoder` is held but not registered, its parts are registered under their
    own names (``encoder``/``bottleneck``/``decoder``), so state-dict keys, exports, converted weights,
    the EMA teacher and old checkpoints need no renaming.

    Args:
        encoder: encoder preset: ``tiny`` (CPU), ``S``, ``B`` or ``L`` (the paper's sizes).
        encoder_width: override the preset's width.
        encoder_depth: override the preset's depth.
        encoder_heads: override the preset's number of heads.
        image_size: training image size in pixels.
        patch_size: ViT patch size; the latent grid is ``image_size / patch_size``.
        latent_dim: width d of the bottleneck latent (VTP: 64, "f16d64").
        norm: ``rms`` (VTP) or ``layer``.
        ffn: ``swiglu`` (VTP) or ``gelu``.
        pos_embed: ``rope`` (2-D RoPE, VTP) or ``absolute`` (learned).
        rope_coords: RoPE positions: ``index`` (integer patch indices) or ``normalized`` (each axis of
            the crop's own grid on [-1, 1], times 2π: the official VTP maths, used by ``scale/``).
        norm_eps: epsilon of the encoder's norms (official VTP RMSNorm: 1e-5).
        ffn_align: round the SwiGLU hidden width up to a multiple of this (official VTP: 8; 0: no rounding).
        lr: peak AdamW learning rate.
        min_lr_ratio: final learning rate as a fraction of ``lr`` (cosine decay).
        warmup_fraction: fraction of training steps spent in linear learning-rate warm-up.
        weight_decay: AdamW weight decay (not applied to norms, biases and tokens).
        betas: AdamW betas.
        fused_optimizer: torch's fused AdamW (one kernel over all parameters) instead of the
            per-parameter loop. ``None``: fused when every parameter is on a GPU. ``True`` also on a
            CPU (the scale presets; ~4x faster optimizer step there); it rounds the last bit of some
            updates differently, so the CPU grid keeps the loop and its archived numbers reproduce.
        teacher_momentum: EMA momentum of the teacher at the start (cosine schedule to ``teacher_momentum_end``).
        teacher_momentum_end: EMA momentum at the end of training.
        init_weights: optional checkpoint (Lightning ``.ckpt`` or exported ``model.safetensors``) whose
            matching modules initialise this model, e.g. a stage-1 tokenizer for stage-2 decoder tuning.
        drop_path_schedule: how the student passes' stochastic depth spreads over the blocks: ``linear``
            (0 at the first block up to the objective's rate at the last, DINOv2's default) or
            ``uniform`` (every block at the objective's rate, as the official VTP code does).
        compile_blocks: ``torch.compile`` the attention/FFN branches of every transformer block (encoder,
            teacher, decoder) when the fit starts; off by default (see :mod:`vtp_lightning.models.compile`).
    """

    #: the held (not registered) autoencoder; set with object.__setattr__ in __init__
    _autoencoder: VTPAutoencoder

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, when a composition is defined, two mixins that declare the same option name.

        Every mixin passes ``**kwargs`` up the chain, so a name declared twice would silently go to
        the first class in the MRO only.
        """
        super().__init_subclass__(**kwargs)
        owners: dict[str, str] = {}
        for name, klass in declared_options(cls):
            if name in owners:
                raise TypeError(
                    f"{cls.__name__}: option {name!r} is declared by both {owners[name]} and "
                    f"{klass.__name__}; prefix each objective's options with its name"
                )
            owners[name] = klass.__name__

    def __init__(
        self,
        *,
        encoder: str = "tiny",
        encoder_width: int | None = None,
        encoder_depth: int | None = None,
        encoder_heads: int | None = None,
        image_size: int = 32,
        patch_size: int = 4,
        latent_dim: int = 64,
        norm: Literal["rms", "layer"] = "rms",
        ffn: Literal["swiglu", "gelu"] = "swiglu",
        pos_embed: Literal["rope", "absolute"] = "rope",
        rope_coords: Literal["index", "normalized"] = "index",
        norm_eps: float = 1e-6,
        ffn_align: int = 0,
        lr: float = 1e-3,
        min_lr_ratio: float = 0.1,
        warmup_fraction: float = 0.05,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        fused_optimizer: bool | None = None,
        teacher_momentum: float = 0.992,
        teacher_momentum_end: float = 1.0,
        init_weights: str | None = None,
        drop_path_schedule: DropPathSchedule = "linear",
        compile_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # every option of the composition (mixins' too), against the one table, before anything is built
        check_model_options(type(self), self.hparams, prefix="")
        encoder_config = ViTConfig.preset(
            encoder,
            width=encoder_width,
            depth=encoder_depth,
            heads=encoder_heads,
            patch_size=patch_size,
            image_size=image_size,
            norm=norm,
            ffn=ffn,
            pos_embed=pos_embed,
            rope_coords=rope_coords,
            norm_eps=norm_eps,
            ffn_align=ffn_align,
        )
        autoencoder = VTPAutoencoder(encoder_config, latent_dim)
        object.__setattr__(self, "_autoencoder", autoencoder)  # not a submodule: its parts are, below
        self.encoder = autoencoder.encoder
        self.bottleneck = autoencoder.bottleneck
        self.teacher = EMATeacher()
        self._objectives: dict[str, Objective] = {}
        self.step_cache: dict[Any, Any] = {}
        self._after_step_hooks: list[Callable[[], None]] = []
        self._init_weights_path = init_weights
        drop_path_rates(0.0, 1, drop_path_schedule)  # an unknown schedule fails here, not at the first step
        self._drop_path_schedule = drop_path_schedule

    # ------------------------------------------------------------------ the autoencoder
    @property
    def autoencoder(self) -> VTPAutoencoder:
        """The encode/decode model this tokenizer trains (its parts are this module's)."""
        return self._autoencoder

    @property
    def encoder_config(self) -> ViTConfig:
        return self._autoencoder.encoder_config

    @property
    def latent_dim(self) -> int:
        return self._autoencoder.latent_dim

    @property
    def decoder_config(self) -> ViTConfig | None:
        """The pixel decoder's configuration; None until an objective attaches one."""
        return self._autoencoder.decoder_config

    def attach_decoder(self, config: ViTConfig) -> PixelDecoder:
        """Give the autoencoder its pixel decoder, registered here as ``decoder`` (reconstruction's)."""
        self.decoder = self._autoencoder.attach_decoder(config)
        return self.decoder

    # ------------------------------------------------------------------ services for mixins
    def add_objective(
        self,
        name: str,
        weight: float,
        loss: Callable[[dict[str, Any]], ObjectiveOutput],
        validate: Callable[[dict[str, Any]], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        """Register an objective; it contributes ``weight * loss`` when ``weight > 0``."""
        if name in self._objectives:
            raise ConfigError(f"objective {name!r} is registered twice; each mixin must use its own name")
        self._objectives[name] = Objective(name, float(weight), loss, validate)

    def has_objective(self, name: str) -> bool:
        """True when objective ``name`` (``clip``, ``dino``, ``mim``, ``rec``, ...) is present and enabled."""
        obj = self._objectives.get(name)
        return obj is not None and obj.enabled

    @property
    def has_trained_decoder(self) -> bool:
        """Whether a pixel decoder is being trained (reconstruction enabled): what rFD/gFD need."""
        return self.has_objective("rec")

    @property
    def objectives(self) -> dict[str, Objective]:
        return dict(self._objectives)

    def add_after_optimizer_step(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every optimiser step, once the EMA teacher is updated (e.g. a clamp on a
        parameter); hooks run in the order they were added."""
        self._after_step_hooks.append(hook)

    def require_teacher(self, *module_names: str) -> None:
        """Keep an EMA copy of the named student modules in ``self.teacher`` (idempotent).

        The copy is taken from the student at construction, has no gradients, and is updated after
        every optimiser step with the cosine momentum schedule.
        """
        for name in module_names:
            self.teacher.follow(name, getattr(self, name))

    def encode_cached(
        self,
        key: Any,
        images: torch.Tensor,
        *,
        drop_path_rate: float = 0.0,
        masks: torch.Tensor | None = None,
        teacher: bool = False,
    ) -> dict[str, Any]:
        """Encoder pass shared by every objective that asks for the same ``key`` within one step."""
        cache_key = (key, float(drop_path_rate), masks is not None, teacher)
        if cache_key not in self.step_cache:
            self.step_cache[cache_key] = self.encode_pass(
                images, drop_path_rate=drop_path_rate, masks=masks, teacher=teacher
            )
        return self.step_cache[cache_key]

    def encode_pass(
        self,
        images: torch.Tensor,
        *,
        drop_path_rate: float = 0.0,
        masks: torch.Tensor | None = None,
        teacher: bool = False,
    ) -> dict[str, Any]:
        """The uncached pass behind :meth:`encode_cached`: the student's, or the teacher's without gradients."""
        if teacher:
            with torch.no_grad():
                return self.teacher["encoder"](images)
        return self.student_encode(images, masks=masks, drop_path_rate=drop_path_rate)

    def student_encode(
        self,
        images: torch.Tensor,
        *,
        masks: torch.Tensor | None = None,
        drop_path_rate: float = 0.0,
        patch_rows: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """One uncached student encoder pass, stochastic depth spread by ``drop_path_schedule``."""
        return self.encoder(
            images,
            masks=masks,
            drop_path_rate=drop_path_rate,
            drop_path_schedule=self._drop_path_schedule,
            patch_rows=patch_rows,
        )

    @property
    def total_steps(self) -> int:
        """Optimiser steps in the whole run (1 before a trainer is attached)."""
        return total_training_steps(self._trainer)

    @property
    def progress(self) -> float:
        """Fraction of training done, from the global step (restored on resume)."""
        return min(self.global_step / self.total_steps, 1.0)

    def teacher_momentum_now(self) -> float:
        return cosine_ramp(
            self.hparams["teacher_momentum"], self.hparams["teacher_momentum_end"], self.progress
        )

    # ------------------------------------------------------------------ public encode/decode API
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, 3, H, W)`` -> latents ``(B, d, H/p, W/p)`` (no gradients)."""
        return self._autoencoder.encode(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> normalised images, through the pixel decoder (no gradients)."""
        if self._autoencoder.decoder is None:
            raise ConfigError(
                f"{type(self).__name__} has no pixel decoder; use a tokenizer with the reconstruction objective"
            )
        return self._autoencoder.decode(latents)

    def extract_features(
        self, images: torch.Tensor, source: FeatureSource = "student"
    ) -> dict[str, torch.Tensor]:
        """Frozen features for probes: pre-bottleneck CLS and mean patch token, and the bottleneck latent.

        ``source="teacher"`` reads the EMA teacher's trunk when there is one (else the student). The
        latent always comes from the student encoder, since only the student has a bottleneck.
        """
        trunk = self.teacher["encoder"] if source == "teacher" and "encoder" in self.teacher else self.encoder
        out = trunk(images)
        student = out if trunk is self.encoder else self.encoder(images)
        latent = self.bottleneck(student["patch"], tuple(student["grid"].tolist()))
        return {
            "cls": out["cls"],
            "patch_mean": out["patch"].mean(dim=1),
            "latent_mean": latent.mean(dim=(2, 3)),
            "latent": latent.flatten(1),
        }

    # ------------------------------------------------------------------ Lightning hooks
    def configure_model(self) -> None:
        """Compile the block branches once every module (teacher, decoder) exists, if asked to; then,
        under ``ModelParallelStrategy``, shard with FSDP2 (:mod:`vtp_lightning.fsdp`)."""
        if self.hparams.get("compile_blocks") and not getattr(self, "_blocks_compiled", False):
            compile_block_branches(self)
            self._blocks_compiled = True
        shard_for_strategy(self)

    def on_fit_start(self) -> None:
        if self._init_weights_path and self.global_step == 0:
            self.load_matching_weights(self._init_weights_path)

    def on_validation_start(self) -> None:
        # `lightning validate` with init_weights (and no --ckpt_path) evaluates those weights, e.g. a
        # converted official checkpoint; during fit they were loaded at fit start.
        trainer = self.trainer
        standalone = trainer.state.fn == "validate" and not trainer.ckpt_path
        if self._init_weights_path and standalone and not getattr(self, "_init_weights_loaded", False):
            self.load_matching_weights(self._init_weights_path)
            self._init_weights_loaded = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        seed_training_step(self.global_step)  # an exact resume needs the step's own random stream

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The shared loss loop (:func:`objective_losses`), then its terms logged as ``train/...``."""
        losses = objective_losses(self, batch)
        batch_size = batch["image"].shape[0]
        self.log("train/loss", losses.total.detach(), prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in losses.logs.items()}, batch_size=batch_size)
        if len(self.teacher):
            self.log("train/teacher_momentum", self.teacher_momentum_now(), batch_size=batch_size)
        if "skipped" in batch:
            self.log("train/skipped_samples", float(batch["skipped"]), reduce_fx="sum", batch_size=batch_size)
        return losses.total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        for objective in self._objectives.values():
            if objective.enabled and objective.validate is not None:
                scores = objective.validate(batch)
                self.log_dict({f"val/{k}": v for k, v in scores.items()}, batch_size=batch["image"].shape[0])

    def on_test_start(self) -> None:
        load_standalone_init_weights(self)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Held-out objective scores as ``test/...``; the evaluation callbacks add their metrics at the end."""
        log_objective_scores(self, batch, "test")

    def on_predict_start(self) -> None:
        load_standalone_init_weights(self)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Latents of the images and of their mirror images (``lightning predict``; a LatentWriter stores them)."""
        return encode_for_prediction(self, batch)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.after_optimizer_step()

    def after_optimizer_step(self) -> None:
        """What follows every optimiser step: the EMA teacher update, then the mixins' hooks
        (:meth:`add_after_optimizer_step`). Lightning's ``optimizer_step`` and the bench's step call it."""
        self.update_teacher()
        for hook in self._after_step_hooks:
            hook()

    @torch.no_grad()
    def update_teacher(self) -> None:
        """EMA step ``teacher = m * teacher + (1 - m) * student`` for every teacher module."""
        self.teacher.ema_step(self._teacher_students(), self.teacher_momentum_now())

    def _teacher_students(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.teacher}

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW (decay / no-decay groups) with warm-up + cosine (:mod:`~vtp_lightning.objectives.optimizer_groups`)."""
        return adamw_warmup_cosine(
            self.named_parameters(),
            lr=self.hparams["lr"],
            betas=self.hparams["betas"],
            weight_decay=self.hparams["weight_decay"],
            fused=self.hparams.get("fused_optimizer"),
            total_steps=self.total_steps,
            warmup_fraction=self.hparams["warmup_fraction"],
            min_lr_ratio=self.hparams["min_lr_ratio"],
        )

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's clipping, also for a fused AdamW under bf16-mixed.

        Lightning's AMP plugin refuses to clip for any optimizer that unscales gradients itself (fused
        AdamW), even when there is nothing to unscale: bf16-mixed has no gradient scaler. There the
        gradients are the true ones, so the plain precision plugin's clipping is exact
        (:func:`~vtp_lightning.objectives.optimizer_groups.clip_unscaled_gradients`).
        """
        if gradient_clip_val and clip_unscaled_gradients(
            self.trainer.precision_plugin, optimizer, gradient_clip_val, gradient_clip_algorithm
        ):
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_callbacks(self) -> list[pl.Callback]:
        """The guard against a diverged run and the skipped-sample count, whatever callback list the
        config gives (:mod:`vtp_lightning.always_on`)."""
        return always_on_callbacks()

    # ------------------------------------------------------------------ weights
    def load_matching_weights(self, path: str | Path) -> list[str]:
        """Initialise from another run's weights: every tensor whose name exists here must match in shape.

        Returns the top-level modules that were loaded. Raises :class:`CheckpointError` when the file
        comes from a different architecture (:func:`~vtp_lightning.objectives.weights_loading.load_matching_weights`).
        """
        return load_matching_weights(self, path)

    def architecture(self) -> dict[str, Any]:
        """What :func:`vtp_lightning.export.from_pretrained` needs to rebuild the encode/decode path."""
        return self._autoencoder.architecture()

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``load_from_checkpoint``, reading tensors only whatever ``weights_only`` says (as
        :class:`SafeCheckpointIO` does: a file or stream a user hands us never runs pickled code); a
        checkpoint saved before an option was renamed is handed to it with its hyper-parameters renamed
        (:mod:`vtp_lightning.renamed_options`)."""
        checkpoint_path = migrated_checkpoint(checkpoint_path, cls)
        kwargs["weights_only"] = True
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stamp(checkpoint, self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with one clear message, a checkpoint written by another model or architecture."""
        check_checkpoint_matches(self, checkpoint)
