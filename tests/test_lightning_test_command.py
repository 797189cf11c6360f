"""``lightning test``: the evaluation metrics on the test split, from a checkpoint or an exported directory.

Runs the real CLI on a one-step checkpoint of ``experiments/ae.yaml`` (shrunk) with the evaluation
callbacks sized to a few dozen images.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vtp_lightning.cli import main
from vtp_lightning.export import main as export_main

REPO = Path(__file__).resolve().parents[1]
AE_CONFIG = REPO / "experiments" / "ae.yaml"
SMALL_EVALUATION = [
    {"class_path": "callbacks.ReconstructionEvaluation", "init_args": {"num_images": 32, "grid_images": 0}},
    {
        "class_path": "callbacks.LinearProbeEvaluation",
        "init_args": {"train_images": 64, "eval_images": 32, "steps": 5},
    },
    {
        "class_path": "callbacks.ZeroShotEvaluation",
        "init_args": {"eval_images": 32},
    },  # no text tower: skipped
    {  # trains a DiT, which Lightning's inference mode would forbid
        "class_path": "callbacks.GenerationEvaluation",
        "init_args": {
            "train_images": 64,
            "reference_images": 32,
            "pool_images": 64,
            "grid_images": 0,
            "protocol": {
                "dit": "tiny",
                "train_steps": 5,
                "batch_size": 16,
                "sampling_steps": 2,
                "num_samples": 32,
            },
        },
    },
]
RECONSTRUCTION_AND_PROBE = {"test/rec_l1", "test/rfd_fmnist", "test/psnr", "test/ssim", "test/probe_cls_top1"}
GENERATION = {
    "test/gfd_fmnist",
    "test/gfd_fmnist_inf",
    "test/gkd_fmnist",
    "test/gkd_fmnist_se",
    "test/gen_dit_loss",
}
EXPECTED = RECONSTRUCTION_AND_PROBE | GENERATION | {"test/probe_latent_top1", "test/gen_class_agreement"}

pytestmark = pytest.mark.integration


def cli_args(root: Path, shrunk_cli_args: Any, **overrides: Any) -> list[str]:
    args = shrunk_cli_args(AE_CONFIG, root, **overrides)
    args[0] = "test"
    return args + ["--trainer.callbacks", json.dumps(SMALL_EVALUATION)]


def metrics_row(root: Path) -> dict[str, float]:
    with open(root / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for row in rows for k, v in row.items() if k.startswith("test/") and v}


@pytest.fixture(scope="module")
def from_checkpoint(
    ae_checkpoint: Path, shrunk_cli_args: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("test_ckpt")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(cli_args(root, shrunk_cli_args, ckpt_path=ae_checkpoint)) == 0
    return root, printed.getvalue()


def test_lightning_test_prints_and_logs_every_applicable_metric_under_test(
    from_checkpoint: tuple[Path, str],
) -> None:
    root, printed = from_checkpoint
    assert "Test metric" in printed
    for name in EXPECTED:
        assert name in printed
    assert "zeroshot" not in printed  # the AE has no text tower
    logged = metrics_row(root)
    assert set(logged) == EXPECTED
    assert 0.0 <= logged["test/probe_latent_top1"] <= 100.0 and logged["test/psnr"] > 0.0


def test_an_exported_directory_scores_the_same_as_its_checkpoint(
    from_checkpoint: tuple[Path, str], ae_checkpoint: Path, shrunk_cli_args: Any, tmp_path: Path
) -> None:
    exported = tmp_path / "exported"
    assert export_main([str(ae_checkpoint), str(exported)]) == 0
    root = tmp_path / "run"
    args = cli_args(root, shrunk_cli_args, **{"model.init_args.init_weights": exported})
    assert main(args) == 0
    assert metrics_row(root) == metrics_row(from_checkpoint[0])


def test_no_held_out_split_is_one_error_line(
    ae_checkpoint: Path, shrunk_cli_args: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pictures" / "only").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(tmp_path / "pictures" / "only" / "a.png")
    train = {
        "class_path": "vtp_lightning.data.ImageFolder",
        "init_args": {"root": str(tmp_path / "pictures")},
    }
    args = cli_args(tmp_path / "run", shrunk_cli_args, ckpt_path=ae_checkpoint)
    assert main([*args, "--data.train", json.dumps(train)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "set data.test" in lines[-1]
    assert not any("Traceback" in line for line in lines)
