"""What every evaluation callback shares: when to run, on which weights, and how results are recorded.

An evaluation runs every ``every_n_steps`` optimiser steps and/or at the end of fit, and once at
the end of ``lightning validate`` (e.g. on a converted official checkpoint given as ``init_weights``)
and of ``lightning test`` (on the test split, see :attr:`EvaluationCallback.eval_split`), on the frozen current weights (the model is put in eval mode under ``torch.no_grad`` and restored afterwards).

Results are written straight to every logger at the current global step, together with the compute
spent so far (``compute/*`` from :class:`callbacks.compute.ComputeAccounting` when present), so each
row of ``metrics.csv`` says what the tokenizer scored *and* what it cost to get there. They are also
put in ``trainer.callback_metrics`` (for the progress bar, checkpoint monitors and the summary).

Under DDP every rank evaluates its shard of the data; features are gathered so every rank computes
the same number, and only rank 0's loggers write it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.seed import isolate_rng
from torch.utils.data import DataLoader, Dataset, Subset

from vtp_lightning.errors import ConfigError, NonFiniteError
from vtp_lightning.pixels import denormalize


class EvaluationCallback(Callback):
    """Base of the evaluation callbacks.

    Args:
        every_n_steps: evaluate every this many optimiser steps (null: only at the end of fit).
        at_fit_end: evaluate once more when fit ends (skipped if the last step was just evaluated).
        batch_size: images per forward pass during evaluation.
    """

    #: a short name used in messages and file names
    name: str = "evaluation"
    #: the held-out split evaluations read: ``"val"``, or ``"test"`` while ``lightning test`` runs them
    eval_split: str = "val"

    def __init__(
        self, every_n_steps: int | None = None, at_fit_end: bool = True, batch_size: int = 256
    ) -> None:
        super().__init__()
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(
                f"{type(self).__name__}.every_n_steps must be positive or null, got {every_n_steps}"
            )
        self.every_n_steps = every_n_steps
        self.at_fit_end = at_fit_end
        self.batch_size = batch_size
        self._last_evaluated_step = -1
        self.last_results: dict[str, float] = {}
        self.seconds_spent = 0.0

    # ------------------------------------------------------------------ what subclasses implement
    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        raise NotImplementedError

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        """Whether this evaluation makes sense for the module (e.g. zero-shot needs a text tower)."""
        return True

    def check_inputs(self) -> None:
        """Fail at fit start on what the first evaluation would need (e.g. a missing weights file),
        instead of after the first ``every_n_steps`` of training."""

    # ------------------------------------------------------------------ scheduling
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.applies_to(pl_module):
            self.check_inputs()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        # A step spans several batches under gradient accumulation: evaluate it once.
        due = self.every_n_steps and step > 0 and step % self.every_n_steps == 0
        if due and step != self._last_evaluated_step:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_fit_end and trainer.global_step != self._last_evaluated_step:
            self.run(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate" and self.applies_to(pl_module):
            self.check_inputs()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``lightning validate`` (not fit's periodic validation) runs the evaluation once."""
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self.run(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.applies_to(pl_module):
            self.check_inputs()

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``lightning test`` runs the evaluation once on the test split, logged as ``test/<metric>``
        through the module, so Lightning prints it in its metrics table and returns it from ``test``."""
        self.eval_split = "test"
        try:
            self.run(trainer, pl_module)
        finally:
            self.eval_split = "val"

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Evaluate now on frozen weights, record the results, restore the training mode."""
        if not self.applies_to(pl_module):
            return {}
        refuse_non_finite_weights(pl_module, f"{type(self).__name__} at step {trainer.global_step}")
        start = time.perf_counter()
        # Standalone validate/test call this inside Lightning's inference mode, where nothing can train
        # (the gFD protocol's DiT, the probe): leave it; frozen() still turns gradients off.
        # isolate_rng: evaluation must not change training's RNG streams.
        with torch.inference_mode(False), frozen(pl_module), isolate_rng():
            results = self.evaluate(trainer, pl_module)
        self.seconds_spent += time.perf_counter() - start
        self._last_evaluated_step = trainer.global_step
        self.last_results = dict(results)
        if self.eval_split == "test":
            log_test_results(pl_module, results)
        else:
            record(trainer, pl_module, results)
        return results

    def state_dict(self) -> dict[str, Any]:
        return {"last_evaluated_step": self._last_evaluated_step, "seconds_spent": self.seconds_spent}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_evaluated_step = state_dict.get("last_evaluated_step", -1)
        self.seconds_spent = state_dict.get("seconds_spent", 0.0)


def refuse_non_finite_weights(pl_module: pl.LightningModule, what: str) -> None:
    """Scores of NaN weights are meaningless (and break e.g. the Fréchet distance's eigh): refuse them."""
    bad = [
        n
        for n, p in pl_module.named_parameters()
        if p.is_floating_point() and not bool(torch.isfinite(p).all())
    ]
    if bad:
        raise NonFiniteError(
            f"{what}: {len(bad)} weight tensors hold NaN or infinity (e.g. {bad[0]}); the run diverged, "
            "evaluate an earlier checkpoint"
        )


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the duration; the previous mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def has_trained_decoder(pl_module: pl.LightningModule) -> bool:
    """Whether the module trains (or has trained) its pixel decoder: a tokenizer with the reconstruction
    objective enabled, or a stage-2 decoder tuning run. An untrained decoder's rFD/gFD would mean nothing."""
    return bool(getattr(pl_module, "has_trained_decoder", False))


def compute_columns(trainer: pl.Trainer) -> dict[str, float]:
    """The cumulative compute totals of the run so far (empty without ComputeAccounting)."""
    for callback in trainer.callbacks:
        snapshot = getattr(callback, "snapshot", None)
        if callable(snapshot) and type(callback).__name__ == "ComputeAccounting":
            return {key: float(value) for key, value in snapshot().items()}
    return {}


def record(trainer: pl.Trainer, pl_module: pl.LightningModule, results: dict[str, float]) -> None:
    """Write results (plus compute so far) to every logger at the current step, once per run."""
    if not results:
        return
    row = {**compute_columns(trainer), **results}
    for logger in trainer.loggers:
        logger.log_metrics(row, step=trainer.global_step)
        logger.save()
    for key, value in results.items():
        trainer.callback_metrics[key] = torch.tensor(float(value))


def log_test_results(pl_module: pl.LightningModule, results: dict[str, float]) -> None:
    """Log ``eval/<metric>`` results as ``test/<metric>`` through the module (every rank holds the
    same gathered numbers, so nothing is reduced)."""
    for key, value in results.items():
        pl_module.log(f"test/{key.removeprefix('eval/')}", float(value), sync_dist=False)


def run_directory(trainer: pl.Trainer) -> Path:
    """Where evaluation artefacts (image grids, protocol JSON) go: the run's log dir.

    Callers write artefacts on rank 0 only, so this must not be a collective: ``trainer.log_dir``
    broadcasts from rank 0 and would wait forever for the other ranks. It resolves the same
    directory locally instead.
    """
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        path = trainer.default_root_dir
    elif isinstance(logger, TensorBoardLogger | CSVLogger):
        path = logger.log_dir
    else:
        path = logger.save_dir
    path = Path(path or trainer.default_root_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_and_log_image(trainer: pl.Trainer, grid: torch.Tensor, path: Path, tag: str) -> None:
    """Write an image grid as PNG and send it to every logger that takes images (TensorBoard)."""
    from torchvision.utils import save_image

    save_image(grid, path)
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(tag, grid, global_step=trainer.global_step)


def rank_shard(dataset: Dataset, trainer: pl.Trainer) -> Dataset:
    """This rank's share of ``dataset``; shards are equal-sized so ``all_gather`` lines up."""
    world, rank = trainer.world_size, trainer.global_rank
    per_rank = len(dataset) // world
    if per_rank == 0:
        raise ConfigError(f"an evaluation set of {len(dataset)} images cannot be split over {world} ranks")
    return Subset(dataset, range(rank * per_rank, (rank + 1) * per_rank))


def iterate_images(
    dataset: Dataset, trainer: pl.Trainer, device: torch.device, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``(images, labels)`` of this rank's shard, on ``device``."""
    loader = DataLoader(rank_shard(dataset, trainer), batch_size=batch_size, shuffle=False, num_workers=0)
    for batch in loader:
        yield batch["image"].to(device), batch["label"].to(device)


def real_images01(dataset: Dataset, batch_size: int) -> Iterator[torch.Tensor]:
    """The whole dataset's images in ``[0, 1]``, in order (for reference statistics)."""
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        yield denormalize(batch["image"])


def gather(trainer: pl.Trainer, tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped per-rank tensors along dim 0 (identity on one process)."""
    if trainer.world_size == 1:
        return tensor
    gathered = trainer.strategy.all_gather(tensor)
    return gathered.reshape(-1, *tensor.shape[1:])


def held_out_as(eval_dataset: Callable[..., Dataset], eval_split: str) -> Callable[..., Dataset]:
    """``eval_dataset(split, n)`` whose held-out split (``"val"``) is read from ``eval_split`` instead:
    for code that names ``"val"`` itself (the gFD protocol), so ``lightning test`` scores on the test split."""
    return lambda split, limit=None: eval_dataset(eval_split if split == "val" else split, limit)


def datamodule_of(trainer: pl.Trainer) -> Any:
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None or not hasattr(datamodule, "eval_dataset"):
        raise ConfigError(
            "evaluation callbacks need a VTPDataModule (with eval_dataset) as the trainer's data"
        )
    return datamodule
