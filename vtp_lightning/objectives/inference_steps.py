"""What a tokenizer module does per batch under ``lightning test`` and ``lightning predict``.

Plain functions of the module (no mixin): the module's ``test_step`` / ``predict_step`` call them.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch


def log_objective_scores(module: pl.LightningModule, batch: dict[str, Any], prefix: str) -> None:
    """Each enabled objective's held-out scores (its ``validate``), logged as ``{prefix}/<name>``."""
    for objective in getattr(module, "objectives", {}).values():
        if objective.enabled and objective.validate is not None:
            scores = objective.validate(batch)
            module.log_dict(
                {f"{prefix}/{k}": v for k, v in scores.items()}, batch_size=batch["image"].shape[0]
            )


def encode_for_prediction(module: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The batch's latents and its horizontally flipped images' latents, with indices and labels.

    Two encoder passes, not one on both halves together, so each latent is bit-for-bit what
    ``module.encode`` gives for that batch.
    """
    images = batch["image"]
    return {
        "index": batch["index"],
        "label": batch["label"],
        "latents": module.encode(images),
        "latents_flip": module.encode(images.flip(-1)),
    }


def load_standalone_init_weights(module: Any) -> None:
    """``lightning test`` / ``predict`` with ``init_weights`` and no ``--ckpt_path`` use those weights (a
    Lightning checkpoint, an export or a converted official directory). Called at test/predict start:
    only then does Lightning know whether a checkpoint was restored over the module."""
    path = getattr(module, "_init_weights_path", None)
    if path and not module.trainer.ckpt_path and not getattr(module, "_init_weights_loaded", False):
        module.load_matching_weights(path)
        module._init_weights_loaded = True
