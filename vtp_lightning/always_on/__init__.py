"""Callbacks every training run has, whatever callback list a config or the command line gives.

The modules return :func:`always_on_callbacks` from ``LightningModule.configure_callbacks``; Lightning
adds them to the Trainer's list, replacing any of the same type already there (so a config that still
lists ``callbacks.NonFiniteGuard`` runs one guard, not two).
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from vtp_lightning.always_on.non_finite import NonFiniteGuard
from vtp_lightning.always_on.skipped_samples import SkippedSamples


def always_on_callbacks() -> list[Callback]:
    """A fresh :class:`NonFiniteGuard` and :class:`SkippedSamples`."""
    return [NonFiniteGuard(), SkippedSamples()]


__all__ = ["NonFiniteGuard", "SkippedSamples", "always_on_callbacks"]
