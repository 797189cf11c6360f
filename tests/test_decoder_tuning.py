"""Stage 2: the encoder is frozen and the decoder is tuned with a PatchGAN hinge loss."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from vtp_lightning.data import VTPDataModule
from vtp_lightning.errors import ConfigError
from vtp_lightning.tokenizer import AETokenizer, CLIPAETokenizer

TINY = {"encoder_width": 32, "encoder_depth": 1, "encoder_heads": 2, "latent_dim": 8, "decoder_depth": 1}


def fit(model: pl.LightningModule, root: Path, steps: int) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=CSVLogger(root, name="", version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
        default_root_dir=root,
    )
    trainer.fit(model, VTPDataModule(batch_size=8, ssl_batch_size=0, num_workers=0))
    return trainer


def test_stage2_starts_from_stage1_weights_trains_decoder_and_discriminator_only(tmp_path: Path) -> None:
    stage1 = AETokenizer(**TINY)
    trainer = fit(stage1, tmp_path / "stage1", steps=2)
    checkpoint = tmp_path / "stage1.ckpt"
    trainer.save_checkpoint(checkpoint)

    stage2 = AETokenizer(**TINY, stage=2, disc_start=1, init_weights=str(checkpoint))
    assert not stage2.automatic_optimization
    fit(stage2, tmp_path / "stage2", steps=3)

    for key, value in stage1.encoder.state_dict().items():
        assert torch.equal(stage2.encoder.state_dict()[key], value), f"encoder {key} changed in stage 2"
    decoder_changed = any(
        not torch.equal(stage2.decoder.state_dict()[k], v) for k, v in stage1.decoder.state_dict().items()
    )
    assert decoder_changed
    log = (tmp_path / "stage2" / "metrics.csv").read_text()
    assert "train/loss_gan_d" in log and "train/gan_adaptive_weight" in log and "train/loss_rec" in log


def test_stage2_refuses_other_enabled_objectives(tmp_path: Path) -> None:
    model = CLIPAETokenizer(**TINY, stage=2, text_width=32, text_layers=1, text_heads=2, embed_dim=32)
    with pytest.raises(ConfigError, match="clip"):
        fit(model, tmp_path, steps=1)
