"""Every checkpoint a user passes is read without unpickling code, and a bad one is one error line.

The hostile checkpoint is a real training checkpoint with one extra entry whose unpickling would
run a shell command that creates a marker file: the marker must never appear.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from shell_payload import ShellPayload

from vtp_lightning.cli import main as cli_main
from vtp_lightning.errors import CheckpointError, VTPError
from vtp_lightning.export import main as export_main
from vtp_lightning.tokenizer import CLIPAETokenizer
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.lightning_io import SafeCheckpointIO, open_tensors_only_first

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
AE_CONFIG = EXPERIMENTS / "ae.yaml"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers"),
]


@pytest.fixture
def hostile(ae_checkpoint: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(a checkpoint with a pickled shell payload, the marker file the payload would create)."""
    marker = tmp_path / "payload-ran"
    state = torch.load(ae_checkpoint, map_location="cpu", weights_only=True)
    state["extra"] = ShellPayload(marker)
    path = tmp_path / "hostile.ckpt"
    torch.save(state, path)
    return path, marker


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_real_training_checkpoint_loads_weights_only(ae_checkpoint: Path) -> None:
    state = load_checkpoint(ae_checkpoint)
    assert {"state_dict", "optimizer_states", "hyper_parameters", "loops"} <= set(state)


def test_a_pickled_payload_is_refused_without_running(hostile: tuple[Path, Path]) -> None:
    path, marker = hostile
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)
    assert not marker.exists()


def test_vtp_export_of_a_hostile_checkpoint_is_one_error_and_runs_nothing(
    hostile: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = hostile
    assert export_main([str(path), str(tmp_path / "out")]) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert str(path) in error and "pickled" in error
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["model.init_args.init_weights", "ckpt_path"])
def test_training_from_a_hostile_checkpoint_is_one_error_and_runs_nothing(
    option: str,
    hostile: tuple[Path, Path],
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, marker = hostile
    run = tmp_path / "run"
    assert cli_main(shrunk_cli_args(AE_CONFIG, run, max_steps=1, **{option: path})) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert str(path) in error and "pickled" in error
    assert not marker.exists()
    assert not (run / "checkpoints").exists()  # no step was trained


@pytest.mark.parametrize("fault", ["missing", "empty", "truncated", "directory"])
def test_a_missing_or_truncated_ckpt_path_is_one_error_naming_it(
    fault: str,
    ae_checkpoint: Path,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.ckpt"
    if fault == "empty":
        bad.write_bytes(b"")
    elif fault == "truncated":
        bad.write_bytes(ae_checkpoint.read_bytes()[: ae_checkpoint.stat().st_size // 2])
    elif fault == "directory":
        bad.mkdir()
    assert cli_main(shrunk_cli_args(AE_CONFIG, tmp_path / "run", max_steps=1, ckpt_path=bad)) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert str(bad) in error
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_lightning_reads_checkpoints_through_the_safe_loader_whatever_weights_only_says(
    hostile: tuple[Path, Path],
) -> None:
    path, marker = hostile
    with pytest.raises(CheckpointError, match="pickled"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


@pytest.mark.parametrize("layout", ["full file", "sharded folder"])
def test_lightnings_fsdp_opens_a_checkpoint_tensors_only_before_its_own_unpickler(
    layout: str, hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    """A full checkpoint file, or a sharded folder's ``meta.pt``, is refused before FSDP reads it."""
    from lightning.pytorch.strategies import FSDPStrategy

    path, marker = hostile
    if layout == "sharded folder":
        folder = tmp_path / "sharded.ckpt"
        folder.mkdir()
        (folder / "meta.pt").write_bytes(path.read_bytes())
        path = folder
    strategy = FSDPStrategy()
    open_tensors_only_first(strategy)
    with pytest.raises(CheckpointError, match="pickled"):
        strategy.load_checkpoint(path)
    assert not marker.exists()


def test_a_last_checkpoint_that_lightning_resolves_is_refused_under_a_strategy_with_its_own_reader(
    hostile: tuple[Path, Path],
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--ckpt_path last`` is resolved inside Lightning, past the CLI's own check of user paths."""
    path, marker = hostile
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(path.read_bytes())
    strategy = {"trainer.strategy": json.dumps({"class_path": "own_reader_strategy.OwnReaderStrategy"})}
    assert cli_main(shrunk_cli_args(AE_CONFIG, run, max_steps=1, ckpt_path="last", **strategy)) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "last.ckpt" in error and "pickled" in error
    assert not marker.exists()


@pytest.mark.parametrize("option", ["clip_text_weights", "rec_perceptual_weights"])
def test_a_weights_file_with_a_pickled_payload_is_refused_without_running(
    option: str, tmp_path: Path, tiny_clip_ae_options: dict[str, Any]
) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / f"{option}.pt"
    torch.save({"weight": torch.zeros(2), "extra": ShellPayload(marker)}, path)
    with pytest.raises(VTPError, match="pickled Python objects"):  # one error line through the CLI
        CLIPAETokenizer(**tiny_clip_ae_options, **{option: str(path)})
    assert not marker.exists()


def test_an_inception_weights_file_with_a_pickled_payload_is_refused_without_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch-fidelity reads the file with weights_only=False; the payload must still never run, even
    # when the file's hash is declared the expected one.
    from vtp_lightning.errors import WeightsError
    from vtp_lightning.metrics import inception
    from vtp_lightning.metrics.file_hash import sha256_of_file

    marker = tmp_path / "payload-ran"
    path = tmp_path / "inception.pth"
    torch.save({"fc.bias": torch.zeros(1008), "extra": ShellPayload(marker)}, path)
    monkeypatch.setattr(inception, "INCEPTION_SHA256_PREFIX", sha256_of_file(path)[:8])
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)

    with pytest.raises(WeightsError, match="cannot be read"):
        inception.InceptionFeatureExtractor(path)
    assert not marker.exists()
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # torch's switch is put back as it was


@pytest.mark.parametrize("given_as", ["path", "stream"])
def test_load_from_checkpoint_reads_tensors_only_even_when_asked_for_full_unpickling(
    given_as: str, hostile: tuple[Path, Path]
) -> None:
    """Lightning's ``load_from_checkpoint(..., weights_only=False)`` would unpickle anything."""
    import pickle

    path, marker = hostile
    source = path if given_as == "path" else io.BytesIO(path.read_bytes())
    with pytest.raises(
        (CheckpointError, pickle.UnpicklingError), match="(?i)pickled|weights only load failed"
    ):
        CLIPAETokenizer.load_from_checkpoint(source, weights_only=False)
    assert not marker.exists()
