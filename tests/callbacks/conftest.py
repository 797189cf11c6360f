"""Tiny tokenizers, the embedded data and a few-step CPU fit for the evaluation-callback tests.

Helpers reach the tests through fixtures, so the tests do not depend on how pytest puts test
folders on ``sys.path``. Every test gets its own reference-statistics cache (``VTP_CACHE_DIR``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import CSVLogger
from tiny_sizes import TINY_ENCODER, TINY_LATENT_DIM, TINY_MODEL, TINY_REC

from vtp_lightning.data import VTPDataModule
from vtp_lightning.tokenizer import AETokenizer, VTPTokenizer

TINY_VTP: dict[str, Any] = {**TINY_MODEL, "latent_dim": TINY_LATENT_DIM}  # as ddp_callbacks_script.py
BATCH_SIZE = 8


def tiny_vtp() -> VTPTokenizer:
    """CLIP + DINO + iBOT + reconstruction at toy size (width 32, latent 8 x 8 x 8)."""
    return VTPTokenizer(**TINY_VTP)


def tiny_ae() -> AETokenizer:
    """Reconstruction only: no text tower, so no zero-shot."""
    return AETokenizer(**TINY_ENCODER, **TINY_REC, latent_dim=TINY_LATENT_DIM)


def tiny_data(multicrop: bool = True) -> VTPDataModule:
    """The embedded Fashion-MNIST slice at 32x32, 8 images a batch, no worker processes."""
    if multicrop:
        return VTPDataModule(batch_size=BATCH_SIZE, ssl_batch_size=4, num_workers=0, num_local_crops=2)
    return VTPDataModule(batch_size=BATCH_SIZE, ssl_batch_size=0, num_workers=0)


def fit(
    model: pl.LightningModule,
    root: Path,
    callbacks: list[pl.Callback],
    max_steps: int,
    datamodule: VTPDataModule | None = None,
    **trainer_options: Any,
) -> pl.Trainer:
    """Train ``max_steps`` steps on CPU, logging every step to ``root/metrics.csv`` (no validation)."""
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        default_root_dir=root,
        logger=CSVLogger(root, name="", version=""),
        callbacks=callbacks,
        log_every_n_steps=1,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options,
    )
    trainer.fit(model, datamodule or tiny_data(multicrop=isinstance(model, VTPTokenizer)))
    return trainer


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a CSVLogger ``metrics.csv`` (empty cells are ``""``)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rows_with(rows: list[dict[str, str]], key: str) -> list[dict[str, str]]:
    """The rows that carry a value for ``key``."""
    return [row for row in rows if row.get(key)]


def one_process_trainer(datamodule: VTPDataModule, **overrides: Any) -> SimpleNamespace:
    """What an evaluation reads from a single-process trainer, without training anything."""
    values: dict[str, Any] = dict(
        world_size=1,
        global_rank=0,
        is_global_zero=False,  # no artefact files
        global_step=0,
        datamodule=datamodule,
        loggers=[],
        callbacks=[],
        callback_metrics={},
    )
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(autouse=True)
def isolated_reference_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test caches reference statistics in its own folder, never in the user's home."""
    cache = tmp_path / "vtp-cache"
    monkeypatch.setenv("VTP_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def make_vtp() -> Callable[[], VTPTokenizer]:
    return tiny_vtp


@pytest.fixture(scope="session")
def make_ae() -> Callable[[], AETokenizer]:
    return tiny_ae


@pytest.fixture(scope="session")
def make_data() -> Callable[..., VTPDataModule]:
    return tiny_data


@pytest.fixture(scope="session")
def fit_tiny() -> Callable[..., pl.Trainer]:
    """``fit_tiny(model, root, callbacks, max_steps, datamodule=None, **trainer_options)``."""
    return fit


@pytest.fixture(scope="session")
def metrics_of() -> Callable[[Path], list[dict[str, str]]]:
    """``metrics_of(root)``: the rows of ``root/metrics.csv``."""
    return lambda root: read_metrics(Path(root) / "metrics.csv")


@pytest.fixture(scope="session")
def fake_trainer() -> Callable[..., SimpleNamespace]:
    """``fake_trainer(datamodule, **overrides)``: see :func:`one_process_trainer`."""
    return one_process_trainer
