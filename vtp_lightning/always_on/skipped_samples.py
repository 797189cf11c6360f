"""Count the samples ``data.skip_corrupt`` dropped over a whole run, and log every one of them.

A per-step metric logged through ``LightningModule.log`` reaches ``metrics.csv`` only on the steps
``log_every_n_steps`` picks, so skips on the other steps were lost. Here the running total goes to
every logger at each step that skipped a sample, whatever ``log_every_n_steps`` is and whether or not
:class:`~callbacks.summary.TrainingSummary` is on; the summary reads its count and file names from here.
The total is checkpointed, so a resumed run keeps counting from where it stopped.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

METRIC = "train/skipped_samples_total"


class SkippedSamples(Callback):
    """Running total of skipped samples (this rank's, in the logs) and the first ``max_names`` files, each once.

    Args:
        max_names: how many distinct skipped files to remember (the count covers all of them).
    """

    def __init__(self, max_names: int = 100) -> None:
        super().__init__()
        self.max_names = max_names
        self.total = 0
        self._names: dict[str, None] = {}  # insertion-ordered set
        self._step = 0

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step  # the step this batch trains (the loss rows' step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not isinstance(batch, dict) or "skipped" not in batch:
            return
        count = int(batch["skipped"])
        if count == 0:
            return
        self.total += count
        for name in batch.get("skipped_names") or []:
            if len(self._names) >= self.max_names:
                break
            self._names.setdefault(str(name))
        for logger in trainer.loggers:
            logger.log_metrics({METRIC: float(self.total)}, step=self._step)

    def gathered(self, trainer: pl.Trainer) -> tuple[int, list[str]]:
        """The total and the distinct file names over every rank (each rank skips its own samples)."""
        if trainer.world_size <= 1 or not torch.distributed.is_initialized():
            return self.total, self.names
        everyone: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(everyone, (self.total, self.names))
        names = dict.fromkeys(name for _, rank_names in everyone for name in rank_names)
        return sum(count for count, _ in everyone), list(names)[: self.max_names]

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "names": self.names}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.total = int(state_dict.get("total", 0))
        self._names = dict.fromkeys(state_dict.get("names", []))
