"""Resuming: an interrupted run continues exactly, its metrics history continues, and a resume with
other model options is refused."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from vtp_lightning.cli import main as cli_main
from vtp_lightning.data import VTPDataModule
from vtp_lightning.tokenizer import VTPTokenizer

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
VTP_CONFIG = EXPERIMENTS / "clip_ssl_ae.yaml"

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers")


class _Killed(RuntimeError):
    """Stands for the run being killed (Lightning's own interrupt handling would exit the process)."""


def _rows(metrics_csv: Path) -> dict[int, dict[str, float]]:
    """Every logged training / validation value by step (timings, which differ run to run, left out)."""
    by_step: dict[int, dict[str, float]] = {}
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v and k.startswith(("train/", "val/", "lr-"))}
            by_step.setdefault(int(row["step"]), {}).update(values)
    return by_step


@pytest.mark.integration
def test_a_run_killed_after_its_step_3_checkpoint_and_resumed_matches_the_uninterrupted_run(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six steps of the full VTP objective (random crops, masks, captions, shuffled order), with a
    checkpoint every 3 steps: once straight through, once killed at step 4 and resumed from the
    step-3 checkpoint into the same folder."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert cli_main(shrunk_cli_args(VTP_CONFIG, straight, max_steps=6, checkpoint_every=3)) == 0

    original, kill = VTPTokenizer.on_train_batch_start, [True]

    def killed_at_step_4(self: VTPTokenizer, batch: Any, batch_idx: int) -> None:
        if kill[0] and self.global_step == 4:
            raise _Killed("killed at step 4")
        original(self, batch, batch_idx)

    monkeypatch.setattr(VTPTokenizer, "on_train_batch_start", killed_at_step_4)
    with pytest.raises(_Killed):
        cli_main(shrunk_cli_args(VTP_CONFIG, interrupted, max_steps=6, checkpoint_every=3))
    kill[0] = False
    # step 3 was trained and logged after the step-3 checkpoint was taken: the resume repeats it
    assert "train/loss" in _rows(interrupted / "metrics.csv")[3]

    at_3 = interrupted / "checkpoints" / "epoch=0-step=3.ckpt"
    args = shrunk_cli_args(VTP_CONFIG, interrupted, max_steps=6, checkpoint_every=3, ckpt_path=at_3)
    assert cli_main(args) == 0

    expected, resumed = _rows(straight / "metrics.csv"), _rows(interrupted / "metrics.csv")
    assert sorted(resumed) == sorted(expected) == list(range(6))
    assert any(k.startswith("val/") for row in expected.values() for k in row)
    for step, values in expected.items():
        assert resumed[step].keys() == values.keys(), step
        for key, value in values.items():
            assert resumed[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)

    # the end-of-run summary covers the whole run too (its start is step 0, not the resume step)
    straight_losses = json.loads((straight / "summary.json").read_text())["losses"]
    resumed_losses = json.loads((interrupted / "summary.json").read_text())["losses"]
    assert resumed_losses.keys() == straight_losses.keys()
    for key, row in straight_losses.items():
        assert resumed_losses[key]["steps"] == row["steps"] == 6, key
        assert resumed_losses[key]["start"] == pytest.approx(row["start"], rel=1e-6), key
        assert resumed_losses[key]["end"] == pytest.approx(row["end"], rel=1e-6), key


@pytest.mark.integration
def test_a_resume_with_changed_model_options_is_refused_naming_each_option(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    assert cli_main(shrunk_cli_args(EXPERIMENTS / "ae.yaml", first, max_steps=1)) == 0
    checkpoint = first / "checkpoints" / "last.ckpt"
    changed = {"model.init_args.latent_dim": 8, "model.init_args.lr": 0.5}
    args = shrunk_cli_args(
        EXPERIMENTS / "ae.yaml", tmp_path / "again", max_steps=2, ckpt_path=checkpoint, **changed
    )
    assert cli_main(args) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "latent_dim: 16 in the checkpoint, 8 now" in error
    assert "lr: 0.001 in the checkpoint, 0.5 now" in error
    assert not (tmp_path / "again" / "checkpoints").exists()


def _take(iterator: Any, n: int) -> list[dict[str, Any]]:
    return [next(iterator) for _ in range(n)]


def _same_batches(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("workers", [0, 1])
def test_the_loader_state_resumes_the_batch_sequence_whatever_the_workers(workers: int) -> None:
    def loader(num_workers: int) -> Any:
        dm = VTPDataModule(batch_size=8, ssl_batch_size=4, num_local_crops=2, num_workers=num_workers)
        return dm.train_dataloader()

    reference = _take(iter(loader(0)), 5)

    first = loader(workers)
    assert _same_batches(_take(iter(first), 2), reference[:2])  # the worker count changes nothing
    state = first.state_dict()
    assert state == {"epoch": 0, "position": 2}

    resumed = loader(workers)
    resumed.load_state_dict(state)
    assert _same_batches(_take(iter(resumed), 3), reference[2:])


def test_each_epoch_has_its_own_order() -> None:
    dm = VTPDataModule(batch_size=8, num_workers=0, ssl_batch_size=0)
    sampler = dm.train_dataloader().batch_sampler.sampler
    epoch_0 = list(sampler)
    sampler.set_epoch(1)
    assert sorted(list(sampler)) == sorted(epoch_0) and list(sampler) != epoch_0
