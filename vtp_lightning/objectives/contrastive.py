"""ContrastiveMixin: CLIP (softmax InfoNCE) or SigLIP between the image CLS and a text tower."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.losses.contrastive import ClipLoss, SigLipLoss
from vtp_lightning.models.text import TextConfig, build_text_tower, load_openclip_text_weights
from vtp_lightning.models.text_live_tokens import check_live_token_support, live_token_text_forward
from vtp_lightning.objectives.contract import TokenizerMixin
from vtp_lightning.objectives.objective import ObjectiveOutput


class ContrastiveMixin(TokenizerMixin):
    """Image-text contrastive learning on the pre-bottleneck CLS token.

    Args:
        clip_weight: λ_clip; 0 switches the objective off (its modules are then frozen).
        clip_loss: ``softmax`` (CLIP InfoNCE, as the released VTP models) or ``sigmoid`` (SigLIP).
        clip_embed_dim: joint embedding width E (VTP: 768).
        clip_text_width: text transformer width (VTP: 768).
        clip_text_layers: text transformer depth (VTP: 12).
        clip_text_heads: text transformer heads (VTP: 12).
        clip_text_context_length: maximum caption length in BPE tokens (VTP: 77).
        clip_text_vocab_size: BPE vocabulary size (OpenAI CLIP: 49408).
        clip_text_weights: optional local OpenCLIP checkpoint to initialise the text tower from.
        clip_text_live_tokens_only: run the text tower on each caption's tokens up to its EOT only
            (:mod:`vtp_lightning.models.text_live_tokens`): the same embedding, ~2x less text-tower
            work at half-full captions; gradients differ from the full forward in float rounding,
            so off by default (the archived grid numbers stay reproducible), on in the scale presets.
        clip_drop_path: stochastic depth of the encoder pass that feeds CLIP.
        clip_logit_scale_init: initial log temperature (ln(1/0.07) for CLIP).
        clip_logit_scale_max: upper clamp of the log temperature (ln 100), applied to the parameter
            after each optimiser step (as open_clip does), so a scale that overshoots still gets gradients.
    """

    def __init__(
        self,
        *,
        clip_weight: float = 1.0,
        clip_loss: Literal["softmax", "sigmoid"] = "softmax",
        clip_embed_dim: int = 256,
        clip_text_width: int = 256,
        clip_text_layers: int = 4,
        clip_text_heads: int = 4,
        clip_text_context_length: int = 32,
        clip_text_vocab_size: int = 49408,
        clip_text_weights: str | None = None,
        clip_text_live_tokens_only: bool = False,
        clip_drop_path: float = 0.0,
        clip_logit_scale_init: float = math.log(1 / 0.07),
        clip_logit_scale_max: float = math.log(100.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text_config = TextConfig(
            context_length=clip_text_context_length,
            vocab_size=clip_text_vocab_size,
            width=clip_text_width,
            layers=clip_text_layers,
            heads=clip_text_heads,
            embed_dim=clip_embed_dim,
        )
        self.text_tower = build_text_tower(self.text_config)
        if clip_text_weights:
            load_openclip_text_weights(self.text_tower, clip_text_weights)
        if clip_text_live_tokens_only:
            check_live_token_support(self.text_tower)
        self._text_live_tokens_only = clip_text_live_tokens_only
        self.clip_image_proj = nn.Linear(self.encoder.width, clip_embed_dim, bias=False)
        nn.init.normal_(self.clip_image_proj.weight, std=self.encoder.width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(float(clip_logit_scale_init)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0)) if clip_loss == "sigmoid" else None
        self.clip_loss_fn = SigLipLoss() if clip_loss == "sigmoid" else ClipLoss()
        self._clip_drop_path = clip_drop_path
        self._logit_scale_max = clip_logit_scale_max
        self.add_objective("clip", clip_weight, self._clip_objective)
        self.add_after_optimizer_step(self.clamp_logit_scale)
        if clip_weight <= 0:
            for module in (self.text_tower, self.clip_image_proj):
                module.requires_grad_(False)
            self.logit_scale.requires_grad_(False)
            if self.logit_bias is not None:
                self.logit_bias.requires_grad_(False)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the log temperature in ``[0, clip_logit_scale_max]``: a scale between 1 and 100."""
        self.logit_scale.clamp_(0.0, self._logit_scale_max)

    def encode_image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised CLIP image embeddings ``(B, E)``."""
        return F.normalize(self.clip_image_proj(self.encoder(images)["cls"]), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """L2-normalised CLIP text embeddings ``(B, E)`` from BPE tokens ``(B, L)``."""
        if tokens.shape[1] > self.text_config.context_length:
            raise ConfigError(
                f"captions have {tokens.shape[1]} tokens but the text tower's context is "
                f"{self.text_config.context_length}; set data.context_length <= model.init_args.clip_text_context_length"
            )
        if self._text_live_tokens_only:
            return F.normalize(live_token_text_forward(self.text_tower, tokens), dim=-1)
        return F.normalize(self.text_tower(tokens), dim=-1)

    def _clip_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        features = self.encode_cached("image", batch["image"], drop_path_rate=self._clip_drop_path)
        image = F.normalize(self.clip_image_proj(features["cls"]), dim=-1)
        text = self.encode_text(batch["text"])
        scale = self.logit_scale
        if self.logit_bias is not None:
            loss = self.clip_loss_fn(image, text, scale, self.logit_bias)
        else:
            loss = self.clip_loss_fn(image, text, scale)
        return ObjectiveOutput(loss, {"clip_logit_scale": scale.exp().detach()})
