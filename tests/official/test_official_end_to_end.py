"""Starting from a released VTP checkpoint, end to end on the tiny official fixture: convert,
evaluate with `lightning validate` (the evaluation callbacks run), fine-tune with init_weights,
and tune the decoder in stage 2 — each through the real CLI."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from vtp_lightning.cli import main as lightning
from vtp_lightning.official.command import main as vtp_convert

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "tests" / "fixtures" / "official" / "hf"

pytestmark = [
    pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers"),
    pytest.mark.timeout(600),
    pytest.mark.integration,
]

EVALUATIONS = [
    {
        "class_path": "callbacks.ReconstructionEvaluation",
        "init_args": {"num_images": 16, "feature_extractor": "fmnist", "grid_images": 4, "batch_size": 8},
    },
    {
        "class_path": "callbacks.LinearProbeEvaluation",
        "init_args": {"train_images": 32, "eval_images": 16, "steps": 5, "batch_size": 16},
    },
    {"class_path": "callbacks.ZeroShotEvaluation", "init_args": {"eval_images": 16, "batch_size": 16}},
]


CHECKPOINT_ONLY = json.dumps(
    [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"save_last": True, "save_top_k": 0, "every_n_train_steps": 2},
        }
    ]
)


def _small_run(root: Path) -> list[str]:
    return [
        "--trainer.default_root_dir", str(root),
        "--trainer.accelerator", "cpu",
        "--trainer.limit_val_batches", "2",
        "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--data.batch_size", "4",
        "--data.num_workers", "0",
        "--data.val_limit", "8",
    ]  # fmt: skip


def _metrics(root: Path) -> dict[str, str]:
    """Every metric's last logged value in metrics.csv."""
    values: dict[str, str] = {}
    with open(root / "metrics.csv") as handle:
        for row in csv.DictReader(handle):
            values.update({k: v for k, v in row.items() if v})
    return values


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "vtp-tiny"
    assert vtp_convert([str(RELEASED), str(out)]) == 0
    return out


def test_validate_runs_every_evaluation_on_the_converted_weights(
    converted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["validate", "--config", str(REPO / "experiments" / "clip_ae.yaml")]
    args += ["--config", str(converted / "model.yaml"), *_small_run(tmp_path)]
    args += ["--trainer.callbacks", json.dumps(EVALUATIONS)]
    with caplog.at_level(logging.INFO):
        assert lightning(args) == 0
    assert f"from {converted.resolve()}" in caplog.text  # init_weights loaded before evaluating
    metrics = _metrics(tmp_path)
    for name in ("eval/rfd_fmnist", "eval/psnr", "eval/ssim", "eval/zeroshot_top1", "val/rec_l1"):
        assert name in metrics, sorted(metrics)
    assert any(k.startswith("eval/probe") for k in metrics), sorted(metrics)


def test_fit_starts_from_the_released_directory_given_as_init_weights(
    converted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["fit", "--config", str(REPO / "experiments" / "clip_ae.yaml")]
    args += ["--config", str(converted / "model.yaml"), *_small_run(tmp_path)]
    args += ["--model.init_args.init_weights", str(RELEASED), "--trainer.max_steps", "2"]
    args += ["--trainer.val_check_interval", "2", "--trainer.callbacks", CHECKPOINT_ONLY]
    with caplog.at_level(logging.INFO):
        assert lightning(args) == 0
    assert f"from {RELEASED}" in caplog.text
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "train/loss_clip" in _metrics(tmp_path)


def test_stage_two_tunes_the_decoder_of_the_released_directory(tmp_path: Path) -> None:
    args = ["fit", "--config", str(REPO / "experiments" / "stage2_decoder.yaml"), *_small_run(tmp_path)]
    args += [
        "--model.init_args.tokenizer",
        str(RELEASED),
        "--data.image_size",
        "64",
        "--data.patch_size",
        "16",
    ]
    args += ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    args += ["--trainer.callbacks", CHECKPOINT_ONLY, "--model.init_args.disc_start", "1"]
    assert lightning(args) == 0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert any(k.startswith("train/") for k in _metrics(tmp_path))


def test_lightning_test_scores_the_converted_weights_under_test(converted: Path, tmp_path: Path) -> None:
    args = ["test", "--config", str(REPO / "experiments" / "clip_ae.yaml")]
    args += ["--config", str(converted / "model.yaml"), *_small_run(tmp_path)]
    args += ["--trainer.callbacks", json.dumps(EVALUATIONS)]
    assert lightning(args) == 0
    metrics = _metrics(tmp_path)
    for name in ("test/rfd_fmnist", "test/psnr", "test/ssim", "test/zeroshot_top1", "test/rec_l1"):
        assert name in metrics, sorted(metrics)
    assert not any(k.startswith("eval/") for k in metrics), sorted(metrics)
