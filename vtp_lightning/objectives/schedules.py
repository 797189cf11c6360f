"""Per-iteration schedules (pure functions of training progress, so a resumed run continues exactly)."""

from __future__ import annotations

import math
from typing import Any


def cosine_ramp(start: float, end: float, progress: float) -> float:
    """Cosine interpolation from ``start`` (progress 0) to ``end`` (progress 1)."""
    p = min(max(progress, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * p) + 1.0) / 2.0


def linear_warmup(start: float, end: float, progress: float, warmup: float) -> float:
    """Linear from ``start`` to ``end`` over the first ``warmup`` fraction of training, then ``end``."""
    if warmup <= 0.0 or progress >= warmup:
        return end
    return start + (end - start) * progress / warmup


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return cosine_ramp(1.0, min_ratio, (step - warmup_steps) / span)


def total_training_steps(trainer: Any | None) -> int:
    """Optimiser steps a run will take, for the schedules: Lightning's estimate, else ``max_steps``
    (an infinite data stream); 1 before a trainer is attached."""
    if trainer is None:
        return 1
    total = trainer.estimated_stepping_batches
    return max(int(total), 1) if math.isfinite(total) else max(int(trainer.max_steps), 1)
