"""Stop a diverged run at its first non-finite loss term, before it damages weights or checkpoints.

Always on: every module supplies it (:mod:`vtp_lightning.always_on`), so a run whose callback list
leaves it out (``--trainer.callbacks null``, a preset's own list) still stops at the first NaN.

Lightning's own tools do not do this job: ``Trainer(detect_anomaly=True)`` only flags NaN inside
backward, with a long traceback and a large slowdown, and ``EarlyStopping(check_finite=True)`` only
looks at a monitored metric at validation time and ends the run with exit code 0 — after
``last.ckpt`` has been overwritten with NaN weights.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from vtp_lightning.errors import NonFiniteError


def non_finite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


class NonFiniteGuard(Callback):
    """Raise :class:`NonFiniteError` at the first step whose loss is NaN or infinite.

    The check runs before backward, so the optimiser never applies the bad step and the last
    checkpoint stays the last good one; the error names the step and every non-finite loss term.
    As a second line, a checkpoint whose weights are non-finite (e.g. from overflowing gradients
    behind a finite loss) is refused before it is written.
    """

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        terms = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/loss")}
        bad = {k: v for k, v in terms.items() if not math.isfinite(v)} or {"train/loss": float(loss.detach())}
        detail = ", ".join(f"{k} = {v}" for k, v in sorted(bad.items()))
        raise NonFiniteError(
            f"training diverged at step {trainer.global_step}: {detail}; the run stopped before applying "
            f"this step, and checkpoints hold the last finite weights. {_HINT}"
        )

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        bad = non_finite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            raise NonFiniteError(
                f"training diverged by step {trainer.global_step}: {len(bad)} weight tensors hold NaN or "
                f"infinity (e.g. {bad[0]}); the checkpoint was not written, earlier ones are kept. {_HINT}"
            )


_HINT = "Lower model.init_args.lr (or raise warmup_fraction) and resume from the last checkpoint or restart"
