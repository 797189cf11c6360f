"""ComputeAccounting: measured FLOPs, cumulative totals, logging and checkpoint resume."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from callbacks.compute import FLOPS_KEY, SAMPLES_KEY, WALL_TIME_KEY, ComputeAccounting, batch_size_of

pytestmark = pytest.mark.integration

BATCH, IN, HIDDEN, OUT = 4, 8, 16, 3


def forward_flops(batch: int = BATCH) -> tuple[int, int]:
    """2*B*in*out per Linear (bias adds are not matmul FLOPs)."""
    return 2 * batch * IN * HIDDEN, 2 * batch * HIDDEN * OUT


def hand_counted_flops_per_step() -> int:
    """Forward once, backward twice (weight and input gradients), except that the data entering
    the first layer needs no gradient: 3x forward minus the first layer's forward."""
    first, second = forward_flops()
    return 3 * (first + second) - first


class ImageDataset(Dataset):
    """Dict samples with an ``image`` key, like the suite's training batches."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        return {"image": torch.randn(IN, generator=generator), "label": torch.tensor(index % 3)}


class TwoLayerModel(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self.net(batch["image"]), batch["label"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(ImageDataset(), batch_size=BATCH)


class MatmulAfterBatch(pl.Callback):
    """An 'evaluation' that does matmuls in on_train_batch_end; it must not count as training."""

    def on_train_batch_end(self, *args: object) -> None:
        torch.randn(64, 64) @ torch.randn(64, 64)


def fit(root: Path, max_steps: int, callbacks: list[pl.Callback], ckpt_path: str | None = None) -> pl.Trainer:
    trainer = pl.Trainer(
        default_root_dir=root,
        max_steps=max_steps,
        accelerator="cpu",
        logger=CSVLogger(root, name="", version=""),
        callbacks=callbacks,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TwoLayerModel(), ckpt_path=ckpt_path)
    return trainer


def read_column(path: Path, column: str) -> list[tuple[int, float]]:
    with path.open() as file:
        return [(int(row["step"]), float(row[column])) for row in csv.DictReader(file) if row.get(column)]


def test_one_step_counts_forward_and_backward_matmuls(tmp_path: Path) -> None:
    accounting = ComputeAccounting()
    fit(tmp_path, max_steps=1, callbacks=[accounting])
    assert accounting.flops_per_batch == hand_counted_flops_per_step()
    assert accounting.total_flops == pytest.approx(3 * sum(forward_flops()), rel=0.3)


def test_totals_grow_linearly_and_are_measured_only_every_n_steps(tmp_path: Path) -> None:
    accounting = ComputeAccounting(measure_every_n_steps=4)
    fit(tmp_path, max_steps=6, callbacks=[accounting])
    assert accounting.measured_batches == 2  # batches 0 and 4
    assert accounting.total_flops == 6 * hand_counted_flops_per_step()
    assert accounting.total_samples == 6 * BATCH
    assert accounting.wall_time_s > 0


def test_every_step_row_in_metrics_csv_carries_the_compute_spent(tmp_path: Path) -> None:
    fit(tmp_path, max_steps=5, callbacks=[ComputeAccounting()])
    metrics = tmp_path / "metrics.csv"
    flops = dict(read_column(metrics, FLOPS_KEY))
    samples = dict(read_column(metrics, SAMPLES_KEY))
    assert sorted(flops) == [0, 1, 2, 3, 4]
    assert [flops[step] for step in range(5)] == [
        (step + 1) * hand_counted_flops_per_step() for step in range(5)
    ]
    assert [samples[step] for step in range(5)] == [(step + 1) * BATCH for step in range(5)]
    wall = [value for _, value in read_column(metrics, WALL_TIME_KEY)]
    assert wall == sorted(wall)


def test_other_callbacks_batch_end_work_is_not_training_compute(tmp_path: Path) -> None:
    accounting = ComputeAccounting()
    fit(tmp_path, max_steps=2, callbacks=[MatmulAfterBatch(), accounting])
    assert accounting.total_flops == 2 * hand_counted_flops_per_step()


def test_totals_survive_a_checkpoint_resume(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    first = ComputeAccounting()
    fit(tmp_path, 3, [first, ModelCheckpoint(dirpath=checkpoints, save_last=True, every_n_train_steps=1)])
    resumed = ComputeAccounting()
    fit(tmp_path, 7, [resumed], ckpt_path=str(checkpoints / "last.ckpt"))
    assert resumed.total_flops == 7 * hand_counted_flops_per_step()
    assert resumed.total_samples == 7 * BATCH
    assert resumed.wall_time_s > first.wall_time_s
    assert dict(read_column(tmp_path / "metrics.csv", FLOPS_KEY))[6] == 7 * hand_counted_flops_per_step()


def test_world_size_scales_flops_and_samples_to_global_totals() -> None:
    """Under DDP each rank measures its own step; the logged totals are per-rank x world size."""
    accounting = ComputeAccounting()
    logged: dict[str, float] = {}
    module = SimpleNamespace(log=lambda key, value, **_: logged.__setitem__(key, float(value)))
    trainer = SimpleNamespace(world_size=2)
    layer = nn.Linear(IN, OUT)
    batch = {"image": torch.randn(BATCH, IN)}
    accounting.on_train_batch_start(trainer, module, batch, 0)
    layer(batch["image"]).sum().backward()
    accounting.on_train_batch_end(trainer, module, None, batch, 0)
    per_rank = 2 * (2 * BATCH * IN * OUT)  # forward + weight grad
    assert logged[FLOPS_KEY] == 2 * per_rank
    assert logged[SAMPLES_KEY] == 2 * BATCH


@pytest.mark.parametrize(
    ("batch", "rows"),
    [
        ({"image": torch.zeros(5, 3, 8, 8), "text": torch.zeros(7, 77)}, 5),
        (torch.zeros(6, 2), 6),
        ((torch.zeros(3, 2), torch.zeros(3)), 3),
    ],
)
def test_batch_size_comes_from_the_image_tensor_or_the_batch_tensor(batch: object, rows: int) -> None:
    assert batch_size_of(batch) == rows


def test_measure_every_n_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="measure_every_n_steps"):
        ComputeAccounting(measure_every_n_steps=0)
