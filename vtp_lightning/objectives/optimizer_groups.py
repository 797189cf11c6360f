"""The tokenizer's optimiser: AdamW over two parameter groups, with linear warm-up then cosine decay.

Weight decay applies to matrices only; norms, biases, tokens, position embeddings and the CLIP log
temperature are not decayed. The EMA teacher and frozen parameters are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.objectives.schedules import warmup_cosine_factor

#: parameter names (endings) that are never decayed, besides every parameter with fewer than 2 dims
NO_DECAY_SUFFIXES = ("cls_token", "mask_token", "pos_embed", "logit_scale")


def decay_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(decay, no_decay)``: the trainable student parameters split by whether weight decay applies."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in named_parameters:
        if not param.requires_grad or name.startswith("teacher."):
            continue
        is_vector = param.ndim < 2 or name.endswith(NO_DECAY_SUFFIXES)
        (no_decay if is_vector else decay).append(param)
    return decay, no_decay


def fused_adamw(fused: bool | None, params: Sequence[nn.Parameter]) -> bool | None:
    """``fused`` for AdamW: as configured, or by default on a GPU only (None: torch's per-parameter loop)."""
    if fused is None:
        return all(p.is_cuda for p in params) or None
    if fused and len({p.device.type for p in params}) > 1:
        raise ConfigError("fused_optimizer: true needs every parameter on one device type; set it to null")
    return bool(fused) or None


def adamw_warmup_cosine(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    betas: Sequence[float],
    weight_decay: float,
    fused: bool | None,
    total_steps: int,
    warmup_fraction: float,
    min_lr_ratio: float,
) -> OptimizerLRSchedulerConfig:
    """Lightning's ``configure_optimizers`` answer: AdamW and a per-step warm-up + cosine schedule.

    The groups are named for LearningRateMonitor: ``train/lr/decay`` and ``train/lr/no_decay`` (the
    same value).
    """
    decay, no_decay = decay_groups(named_parameters)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay, "name": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
        ],
        lr=lr,
        betas=(betas[0], betas[1]),
        fused=fused_adamw(fused, decay + no_decay),
    )
    warmup = int(warmup_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup, min_lr_ratio)
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"},
    }


def clip_unscaled_gradients(
    precision_plugin: Precision,
    optimizer: torch.optim.Optimizer,
    clip_val: float,
    algorithm: str | None,
) -> bool:
    """Clip with the plain precision plugin's maths when a mixed-precision plugin holds no gradient
    scaler (bf16-mixed): the gradients are then already the true ones, whatever the optimizer does
    with scaling. Returns False, doing nothing, when a scaler exists (fp16: Lightning's own path)."""
    if not isinstance(precision_plugin, MixedPrecision) or precision_plugin.scaler is not None:
        return False
    Precision.clip_gradients(
        precision_plugin, optimizer, clip_val, GradClipAlgorithmType(algorithm or "norm")
    )
    return True
