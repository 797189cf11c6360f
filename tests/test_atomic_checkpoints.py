"""Checkpoints are written beside their target and renamed into place, whatever ``$TMPDIR`` is: a
save that dies half-way leaves the previous checkpoint whole and no temporary file behind."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from vtp_lightning.cli import main as cli_main
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.lightning_io import SafeCheckpointIO

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers")


class _KilledDuringSave(RuntimeError):
    pass


@pytest.fixture
def separate_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$TMPDIR`` pointed at a folder of its own, which must stay empty."""
    tmpdir = tmp_path / "system-tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)  # make tempfile read $TMPDIR again
    return tmpdir


def _dies_half_way(when: Callable[[Any], bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save writes a few bytes and then the process 'dies' when ``when(target)`` holds."""
    real_save = torch.save

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if when(f):
            f.write(b"PK\x03\x04 half a checkpoint")
            raise _KilledDuringSave("killed during the save")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_save_that_dies_leaves_the_previous_file_whole_and_no_temp_file(
    tmp_path: Path, separate_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ckpts" / "last.ckpt"
    io = SafeCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    io.save_checkpoint({"step": 2, "w": torch.full((3,), 2.0)}, target)  # replaces it
    assert load_checkpoint(target)["step"] == 2

    _dies_half_way(lambda f: True, monkeypatch)
    with pytest.raises(_KilledDuringSave):
        io.save_checkpoint({"step": 3, "w": torch.zeros(3)}, target)
    assert load_checkpoint(target)["step"] == 2
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    assert list(separate_tmpdir.iterdir()) == []


@pytest.mark.integration
def test_a_training_run_killed_while_saving_last_ckpt_keeps_the_previous_last_ckpt(
    tmp_path: Path,
    separate_tmpdir: Path,
    shrunk_cli_args: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saves_of_last: list[str] = []

    def second_save_of_last(f: Any) -> bool:
        name = getattr(f, "name", "")
        if ".last.ckpt." in str(name):
            saves_of_last.append(str(name))
        return len(saves_of_last) == 2 and ".last.ckpt." in str(name)

    _dies_half_way(second_save_of_last, monkeypatch)
    args = shrunk_cli_args(EXPERIMENTS / "ae.yaml", tmp_path / "run", max_steps=3, checkpoint_every=1)
    with pytest.raises(_KilledDuringSave):
        cli_main(args)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert load_checkpoint(checkpoints / "last.ckpt")["global_step"] == 1
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "epoch=0-step=1.ckpt",
        "epoch=0-step=2.ckpt",
        "last.ckpt",
    ]
    assert list(separate_tmpdir.iterdir()) == []
