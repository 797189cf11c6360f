"""``callbacks.NonFiniteGuard``, the name users' configs may still list (the shipped ones no longer do):
the guard lives in :mod:`vtp_lightning.always_on.non_finite`, since every tokenizer module supplies it itself."""

from vtp_lightning.always_on.non_finite import NonFiniteGuard, non_finite_tensors

__all__ = ["NonFiniteGuard", "non_finite_tensors"]
