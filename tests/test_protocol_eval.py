"""The generation protocol on a saved tokenizer: one DiT run scored at several budgets, reproducible
for a protocol seed, with its settings taken from the experiment configs the grid uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from tiny_sizes import tiny_options

from callbacks import GenerationEvaluation
from vtp_lightning.data import VTPDataModule
from vtp_lightning.metrics.generation import GenerationProtocol
from vtp_lightning.metrics.generation_eval import GenerationCounts
from vtp_lightning.protocol_eval import evaluate_protocol, main, protocol_from_config
from vtp_lightning.tokenizer import AETokenizer

TINY = GenerationProtocol(dit="tiny", train_steps=4, batch_size=8, sampling_steps=2, num_samples=20, seed=3)
# 60 training images drawn by seed 3 cover all 10 classes, so the grid has 10 columns
IMAGES = GenerationCounts(train_images=60, reference_images=20, batch_size=20)


@pytest.fixture(autouse=True)
def isolated_reference_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference features are cached in the test's own folder, never in the user's home."""
    monkeypatch.setenv("VTP_CACHE_DIR", str(tmp_path / "vtp-cache"))


@pytest.fixture(scope="module")
def tokenizer() -> AETokenizer:
    torch.manual_seed(0)
    return AETokenizer(**tiny_options(AETokenizer))


def test_one_dit_run_gives_a_row_per_budget_reproducibly(tokenizer: AETokenizer, tmp_path: Path) -> None:
    data = VTPDataModule(num_workers=0)
    with torch.random.fork_rng():
        rows = evaluate_protocol(tokenizer, TINY, [2, 4], IMAGES, data, grid_path=tmp_path / "grid.png")
        again = evaluate_protocol(tokenizer, TINY, [4], IMAGES, data)

    assert [row["dit_steps"] for row in rows] == [2, 4]
    assert all(row["protocol_seed"] == 3 and row["num_samples"] == 20 for row in rows)
    assert all(0.0 <= row["class_agreement"] <= 1.0 for row in rows)
    for key in ("fd", "fd_inf", "kd", "kd_se", "class_agreement"):
        assert again[0][key] == rows[1][key], key  # the step-4 snapshot is the 4-step protocol
    with Image.open(tmp_path / "grid.png") as grid:  # 20 samples, a column per class (10): 2 rows
        assert grid.size == (10 * 33 + 1, 2 * 33 + 1)


def test_the_protocol_comes_from_the_experiment_configs_generation_callback() -> None:
    run = yaml.safe_load(Path("experiments/_run.yaml").read_text())
    (generation,) = [
        c for c in run["trainer"]["callbacks"] if c["class_path"].endswith("GenerationEvaluation")
    ]

    fields, counts = protocol_from_config(Path("experiments/ae.yaml"))

    assert fields == generation["init_args"]["protocol"]
    assert counts.train_images == generation["init_args"]["train_images"]
    assert counts.reference_images == generation["init_args"]["reference_images"]
    # what the config leaves unset (the batch size) is the callback's default: the grid's cells ran with it
    callback = GenerationEvaluation(**{k: v for k, v in generation["init_args"].items() if k != "protocol"})
    assert counts == callback.counts


def test_the_generation_callback_is_found_by_its_class_not_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_generation.py").write_text(
        "from callbacks import GenerationEvaluation\n\n\nclass Mine(GenerationEvaluation):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    callbacks = [
        {"class_path": "vtp_lightning.data.VTPDataModule", "init_args": {"train_images": 1}},  # not one
        {"class_path": "my_generation.Mine", "init_args": {"train_images": 7, "batch_size": 3}},
    ]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))

    fields, counts = protocol_from_config(config)

    assert (fields, counts.train_images, counts.batch_size) == ({}, 7, 3)


def test_a_bad_checkpoint_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_rows_already_written_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.jsonl"
    checkpoint = tmp_path / "never-read.ckpt"  # skipped before it is opened
    out.write_text(json.dumps({"checkpoint": str(checkpoint), "protocol_seed": 0, "dit_steps": 7}) + "\n")
    assert main([str(checkpoint), "--seeds", "0", "--dit-steps", "7", "--out", str(out)]) == 0
    assert "skip" in capsys.readouterr().err


def test_a_row_written_with_a_relative_checkpoint_path_is_skipped_when_asked_by_absolute_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "rows.jsonl"
    out.write_text(
        json.dumps({"checkpoint": "runs/never-read.ckpt", "protocol_seed": 0, "dit_steps": 7}) + "\n"
    )
    absolute = tmp_path / "runs" / "never-read.ckpt"
    assert main([str(absolute), "--seeds", "0", "--dit-steps", "7", "--out", str(out)]) == 0
    assert "skip" in capsys.readouterr().err
