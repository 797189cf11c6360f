"""Every shipped experiment config trains through the real CLI (shrunk to two tiny CPU steps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vtp_lightning.cli import main
from vtp_lightning.config_files import load_config
from vtp_lightning.tokenizer import TOKENIZERS

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CONFIGS = sorted(
    p for p in [*EXPERIMENTS.glob("*.yaml"), *EXPERIMENTS.glob("scale/*.yaml")] if not p.name.startswith("_")
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers"),
]


def _id(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS).with_suffix(""))


def test_every_loss_combination_has_a_config_naming_its_tokenizer() -> None:
    for name, cls in TOKENIZERS.items():
        merged = load_config(EXPERIMENTS / f"{name}.yaml")
        assert merged["model"]["class_path"] == f"{cls.__module__}.{cls.__qualname__}", name


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_shipped_config_trains_two_steps_and_writes_a_checkpoint_and_metrics(
    config: Path, tmp_path: Path, shrunk_cli_args: Callable[..., list[str]]
) -> None:
    overrides = {}
    if load_config(config)["model"]["class_path"].endswith(".DecoderTuning"):
        # stage 2 starts from a stage-1 tokenizer: train a tiny one first
        stage1 = tmp_path / "stage1"
        assert main(shrunk_cli_args(EXPERIMENTS / "ae.yaml", stage1, max_steps=1)) == 0
        overrides["model.init_args.tokenizer"] = stage1 / "checkpoints" / "last.ckpt"
        tmp_path = tmp_path / "stage2"
    assert main(shrunk_cli_args(config, tmp_path, max_steps=2, **overrides)) == 0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/loss" in header
    assert "val/rec_l1" in header  # validation ran at step 2
