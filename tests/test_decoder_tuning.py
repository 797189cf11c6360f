"""Stage 2 (DecoderTuning): a stage-1 tokenizer's encoder is frozen and its decoder tuned with a GAN."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from tiny_sizes import tiny_options

from vtp_lightning.data import VTPDataModule
from vtp_lightning.decoder_tuning import DecoderTuning
from vtp_lightning.errors import CheckpointError, ConfigError
from vtp_lightning.tokenizer import AETokenizer
from vtp_lightning.weights.pretrained import export_pretrained, from_pretrained

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:perceptual loss off")]

TINY = tiny_options(AETokenizer)


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


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> tuple[AETokenizer, Path]:
    root = tmp_path_factory.mktemp("stage1")
    model = AETokenizer(**TINY)
    trainer = fit(model, root, steps=2)
    checkpoint = root / "stage1.ckpt"
    trainer.save_checkpoint(checkpoint)
    return model, checkpoint


def test_stage2_starts_from_stage1_weights_and_trains_decoder_and_discriminator_only(
    stage1: tuple[AETokenizer, Path], tmp_path: Path
) -> None:
    model1, checkpoint = stage1
    stage2 = DecoderTuning(tokenizer=str(checkpoint), disc_start=1)
    for key, value in model1.decoder.state_dict().items():
        assert torch.equal(stage2.decoder.state_dict()[key], value), f"decoder {key} not loaded"
    fit(stage2, tmp_path, steps=3)

    for key, value in model1.encoder.state_dict().items():
        assert torch.equal(stage2.encoder.state_dict()[key], value), f"encoder {key} changed in stage 2"
    for key, value in model1.bottleneck.state_dict().items():
        assert torch.equal(stage2.bottleneck.state_dict()[key], value), f"bottleneck {key} changed"
    decoder_changed = any(
        not torch.equal(stage2.decoder.state_dict()[k], v) for k, v in model1.decoder.state_dict().items()
    )
    assert decoder_changed
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_gan_d", "train/gan_adaptive_weight", "train/loss_rec"} <= set(header)


def test_the_gan_waits_for_disc_start(stage1: tuple[AETokenizer, Path], tmp_path: Path) -> None:
    _, checkpoint = stage1
    stage2 = DecoderTuning(tokenizer=str(checkpoint), disc_start=100)
    before = {k: v.clone() for k, v in stage2.discriminator.state_dict().items()}
    fit(stage2, tmp_path, steps=2)
    for key, value in before.items():
        assert torch.equal(stage2.discriminator.state_dict()[key], value), "discriminator trained too early"


def test_a_stage2_checkpoint_exports_like_a_tokenizer(
    stage1: tuple[AETokenizer, Path], tmp_path: Path
) -> None:
    _, checkpoint = stage1
    stage2 = DecoderTuning(tokenizer=str(checkpoint), disc_start=0)
    trainer = fit(stage2, tmp_path / "run", steps=1)
    trainer.save_checkpoint(tmp_path / "stage2.ckpt")
    exported = from_pretrained(export_pretrained(tmp_path / "stage2.ckpt", tmp_path / "exported"))
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = stage2.decode(stage2.encode(images))
    torch.testing.assert_close(exported.decode(exported.encode(images)), expected)


def test_stage2_also_starts_from_an_exported_directory(
    stage1: tuple[AETokenizer, Path], tmp_path: Path
) -> None:
    model1, checkpoint = stage1
    directory = export_pretrained(checkpoint, tmp_path / "exported")
    stage2 = DecoderTuning(tokenizer=str(directory))
    for key, value in model1.encoder.state_dict().items():
        assert torch.equal(stage2.encoder.state_dict()[key], value)


def test_a_tokenizer_without_a_decoder_is_refused(stage1: tuple[AETokenizer, Path], tmp_path: Path) -> None:
    _, checkpoint = stage1
    state = torch.load(checkpoint, weights_only=True)
    state["vtp_architecture"]["decoder"] = None
    state["state_dict"] = {k: v for k, v in state["state_dict"].items() if not k.startswith("decoder.")}
    torch.save(state, tmp_path / "no_decoder.ckpt")
    with pytest.raises(ConfigError, match="no pixel decoder"):
        DecoderTuning(tokenizer=str(tmp_path / "no_decoder.ckpt"))


def test_resuming_stage2_from_a_stage1_checkpoint_is_refused(stage1: tuple[AETokenizer, Path]) -> None:
    _, checkpoint = stage1
    stage2 = DecoderTuning(tokenizer=str(checkpoint))
    with pytest.raises(CheckpointError, match="init_args.tokenizer"):
        stage2.on_load_checkpoint(torch.load(checkpoint, weights_only=True))
