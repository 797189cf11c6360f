"""A file that is not a checkpoint is one error naming what it looks like, wherever a checkpoint is read.

``torch.load`` runs a text file's bytes as pickle opcodes (a CSV gave ``IndexError``, ``hello`` a
``KeyError``, a YAML line starting with ``c`` a refused ``GLOBAL`` that read as pickled code). The
"pickled Python objects ... could run code" message stays for files that really hold code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vtp_lightning.cli import main as cli_main
from vtp_lightning.errors import CheckpointError
from vtp_lightning.export import main as export_main
from vtp_lightning.weights.checkpoint_file import load_checkpoint

AE_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "ae.yaml"

# (file name, bytes, what the error must call it)
NOT_CHECKPOINTS = {
    "text": ("notes.ckpt", b"remember to resume from step 400\nthen export\n", "plain text"),
    "hello": ("hello.ckpt", b"hello", "plain text"),
    "metrics.csv": ("metrics.csv", b"epoch,step,train/loss\n0,0,1.25\n0,1,1.125\n", "CSV text"),
    "hparams.yaml": ("hparams.yaml", b"clip_weight: 1.0\nencoder: tiny\nlatent_dim: 8\n", "YAML text"),
    "config.json": ("config.json", b'{"architecture": {"latent_dim": 8}}', "JSON text"),
    "binary": ("noise.ckpt", bytes(range(256)) * 4, "binary data"),
}


def _zip_without_data_pkl(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3")
    return path


def _write(tmp_path: Path, case: str) -> Path:
    name, data, _ = NOT_CHECKPOINTS[case]
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(NOT_CHECKPOINTS))
def test_a_file_that_is_not_a_checkpoint_is_named_for_what_it_is(case: str, tmp_path: Path) -> None:
    path = _write(tmp_path, case)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and NOT_CHECKPOINTS[case][2] in message
    assert "pickled Python objects" not in message and "could run code" not in message


def test_a_zip_with_no_data_pkl_and_a_cut_short_checkpoint_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="zip archive with no data.pkl"):
        load_checkpoint(_zip_without_data_pkl(tmp_path / "other.zip"))
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.ones(64, 64)}}, whole)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)
    assert load_checkpoint(whole)["state_dict"]["w"].shape == (64, 64)  # the file it came from loads


def test_a_plain_pickle_that_is_not_a_torch_file_is_unreadable_not_code(tmp_path: Path) -> None:
    path = tmp_path / "numbers.pkl"
    path.write_bytes(pickle.dumps({"step": 3}, protocol=2))
    with pytest.raises(CheckpointError, match="a pickle but not a complete torch checkpoint") as caught:
        load_checkpoint(path)
    assert "could run code" not in str(caught.value)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("true",)


@pytest.mark.parametrize("protocol", [0, 2])
def test_a_pickle_that_holds_code_keeps_the_code_message(protocol: int, tmp_path: Path) -> None:
    path = tmp_path / "payload.ckpt"
    path.write_bytes(pickle.dumps(_Payload(), protocol=protocol))  # protocol 0 is ASCII text
    with pytest.raises(CheckpointError, match="pickled Python objects.*could run code"):
        load_checkpoint(path)


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers")
@pytest.mark.parametrize("case", ["metrics.csv", "hparams.yaml", "hello"])
@pytest.mark.parametrize("entry", ["ckpt_path", "init_weights", "vtp-export"])
def test_every_entry_point_gives_one_error_line_for_a_file_that_is_not_a_checkpoint(
    entry: str,
    case: str,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write(tmp_path, case)
    if entry == "vtp-export":
        code = export_main([str(path), str(tmp_path / "out")])
    else:
        option = "ckpt_path" if entry == "ckpt_path" else "model.init_args.init_weights"
        code = cli_main(shrunk_cli_args(AE_CONFIG, tmp_path / "run", max_steps=1, **{option: path}))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert str(path) in errors[0] and NOT_CHECKPOINTS[case][2] in errors[0]
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "out").exists()
