"""Training compute accounting: cumulative FLOPs, samples and wall time, logged every step.

The paper's claim is about generation quality *per unit of tokenizer compute*, so every row of
``metrics.csv`` should say how much compute was spent to get there. FLOPs are **measured**, not
estimated from a formula: PyTorch's ``FlopCounterMode`` is active from our ``on_train_batch_start``
to our ``on_train_batch_end``. Under automatic optimisation everything a training step does happens
in between (``training_step``, ``zero_grad``, ``backward`` and ``optimizer.step`` run inside the
optimizer closure), so the count covers forward and backward matmuls, convolutions and attention.
Elementwise work (activations, norms, the optimizer update, EMA teachers) is not counted by
``FlopCounterMode``; it is a small fraction for transformer-sized layers.

Measuring is slow (every op goes through a Python dispatch mode), and a step's shapes are fixed,
so the callback measures one batch every ``measure_every_n_steps`` batches (and the first batch
after every (re)start) and reuses that value for the batches in between.

Distributed training: each rank measures its own step. Ranks run the same shapes, so the global
FLOPs of a step are the per-rank FLOPs times ``trainer.world_size``; samples likewise are the
per-rank batch size times the world size. The logged values are therefore global, identical on
every rank, and need no reduction.

Callbacks run in list order, so anything a callback placed *before* this one does in its own
``on_train_batch_end`` would be counted as training compute. :meth:`setup` moves this callback to
the front of ``trainer.callbacks`` so that evaluation work scheduled in ``on_train_batch_end`` by
other callbacks stays outside the measured window.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.data import extract_batch_size
from torch.utils.flop_counter import FlopCounterMode

FLOPS_KEY = "compute/flops"
SAMPLES_KEY = "compute/samples"
WALL_TIME_KEY = "compute/wall_time_s"


def batch_size_of(batch: Any) -> int:
    """Rows in a training batch: the ``image`` tensor of a dict batch, else the first tensor found."""
    if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
        return int(batch["image"].shape[0])
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return int(extract_batch_size(batch))


class ComputeAccounting(pl.Callback):
    """Counts training FLOPs, samples and wall time; logs them as ``compute/*`` every step.

    Attributes (read them from other callbacks): ``total_flops``, ``total_samples``,
    ``wall_time_s`` (cumulative over resumes), ``flops_per_batch`` (the latest measurement, global)
    and ``measured_batches`` (how many batches ran under the FLOP counter in this process).
    """

    def __init__(self, measure_every_n_steps: int = 50) -> None:
        if measure_every_n_steps < 1:
            raise ValueError(f"measure_every_n_steps must be >= 1, got {measure_every_n_steps}")
        self.measure_every_n_steps = measure_every_n_steps
        self.total_flops = 0.0
        self.total_samples = 0
        self.wall_time_s = 0.0
        self.batches = 0
        self.flops_per_batch: float | None = None
        self.measured_batches = 0
        self._counter: FlopCounterMode | None = None
        self._clock: float | None = None

    # -- placement and state -------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Run first among callbacks so others' ``on_train_batch_end`` work is not counted."""
        if trainer.callbacks and trainer.callbacks[0] is not self:
            # a new list: the hook dispatcher is iterating over the old one right now
            trainer.callbacks = [self, *(callback for callback in trainer.callbacks if callback is not self)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "total_flops": self.total_flops,
            "total_samples": self.total_samples,
            "wall_time_s": self.wall_time_s,
            "batches": self.batches,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.total_flops = float(state_dict["total_flops"])
        self.total_samples = int(state_dict["total_samples"])
        self.wall_time_s = float(state_dict["wall_time_s"])
        self.batches = int(state_dict["batches"])

    # -- measurement ---------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._clock = time.perf_counter()
        self.flops_per_batch = None  # re-measure after every (re)start: shapes may have changed

    def _should_measure(self) -> bool:
        return self.flops_per_batch is None or self.batches % self.measure_every_n_steps == 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._should_measure():
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops_per_batch = float(self._counter.get_total_flops()) * trainer.world_size
            self.measured_batches += 1
            self._counter = None
        now = time.perf_counter()
        elapsed = now - self._clock if self._clock is not None else 0.0
        self._clock = now

        rows = batch_size_of(batch)
        self.total_flops += self.flops_per_batch or 0.0
        self.total_samples += rows * trainer.world_size
        self.wall_time_s += elapsed
        self.batches += 1
        for key, value in self.snapshot().items():
            pl_module.log(key, value, on_step=True, on_epoch=False, batch_size=rows)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Leave the dispatch mode if a step failed inside the measured window."""
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self._counter = None

    # -- exact snapshots next to evaluation rows -----------------------------------------------

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The cumulative totals as float64 CPU tensors.

        float32 would round large FLOP counts; CPU because MPS has no float64, and on-step-only
        values are never reduced on the device.
        """
        values = {
            FLOPS_KEY: self.total_flops,
            SAMPLES_KEY: self.total_samples,
            WALL_TIME_KEY: self.wall_time_s,
        }
        return {key: torch.tensor(float(value), dtype=torch.float64) for key, value in values.items()}

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the totals at the step the coming evaluation metrics will be logged at.

        Step rows are only sent to loggers every ``log_every_n_steps``; this row makes the compute
        behind every evaluation exact whatever that setting is.
        """
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._log_directly(trainer, step=_logger_step(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final totals, which the last logged step row may predate."""
        self._log_directly(trainer, step=max(_logger_step(trainer) - 1, 0))

    def _log_directly(self, trainer: pl.Trainer, step: int) -> None:
        metrics = {key: value.item() for key, value in self.snapshot().items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)


def _logger_step(trainer: pl.Trainer) -> int:
    """The step Lightning's logger connector stamps on rows (batches that stepped, not global_step).

    The two differ with several optimizers; Lightning keeps the counter private, so fall back to
    ``global_step`` if it ever moves.
    """
    epoch_loop = trainer.fit_loop.epoch_loop
    return int(getattr(epoch_loop, "_batches_that_stepped", trainer.global_step))
