"""The datamodule inside Lightning: a Trainer fits on it and LightningCLI's parser configures it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningModule, Trainer

from vtp_lightning.data import ImageFolder, VTPDataModule

CONTRACT_KEYS = {"image", "text", "label", "global_crops", "local_crops", "masks"}


class BatchChecker(LightningModule):
    """Fits a single weight and records which keys the batches had."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.train_keys: list[set[str]] = []
        self.val_keys: list[set[str]] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.train_keys.append(set(batch))
        return (batch["image"].mean() - self.weight) ** 2

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_keys.append(set(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.integration
def test_trainer_fits_with_contract_batches() -> None:
    model = BatchChecker()
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=1,
        val_check_interval=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=VTPDataModule(batch_size=8, num_workers=0))
    assert model.train_keys == [CONTRACT_KEYS, CONTRACT_KEYS]
    assert model.val_keys == [{"image", "label", "text"}]


def test_jsonargparse_builds_sources_from_class_paths(image_folder: Path) -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(VTPDataModule, "data")
    config = parser.parse_object(
        {
            "data": {
                "train": {
                    "class_path": "vtp_lightning.data.ImageFolder",
                    "init_args": {"root": str(image_folder)},
                },
                "batch_size": 4,
                "mask_ratio": [0.2, 0.4],
            }
        }
    )
    datamodule = parser.instantiate_classes(config).data
    assert isinstance(datamodule.train_source, ImageFolder)
    assert datamodule.batch_size == 4 and datamodule.mask_generator.ratio_range == (0.2, 0.4)
