"""One quiet Trainer fit on pre-built batches, shared by the objective tests that need a real step."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader


def fit_quietly(
    model: pl.LightningModule, batches: Any, max_steps: int = 1, **trainer_options: Any
) -> pl.Trainer:
    """Fit ``model`` on ``batches`` (a sequence of ready batches) with no logger, checkpoint, progress
    bar or validation; ``trainer_options`` override or add Trainer arguments."""
    options = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        **trainer_options,
    }
    trainer = pl.Trainer(max_steps=max_steps, **options)
    trainer.fit(model, DataLoader(batches, batch_size=None))
    return trainer
