"""A sharded DCP checkpoint is checked before torch unpickles any of it: real ones pass, code is refused.

Torch reads two parts with code-running unpicklers: ``.metadata`` and the shard files' non-tensor items.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from shell_payload import ShellPayload

from vtp_lightning.errors import CheckpointError
from vtp_lightning.weights.dcp_check import check_dcp_checkpoint
from vtp_lightning.weights.lightning_io import open_tensors_only_first

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


def training_state() -> dict:
    """What a training checkpoint holds: tensors, and non-tensor items DCP pickles into the shard files."""
    return {
        "state_dict": {
            "encoder.weight": torch.randn(4, 3),
            "encoder.scale": torch.ones(2, dtype=torch.bfloat16),
            "teacher.index": torch.arange(5),
        },
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4, 3)}},
            "param_groups": [{"lr": 0.1, "betas": (0.9, 0.98), "params": [0], "name": "decay"}],
        },
        "global_step": 3,
        "loops": {"fit_loop": {"epoch": 0, "done": False}},
    }


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    """A folder written by torch.distributed.checkpoint from :func:`training_state`."""
    folder = tmp_path / "sharded.ckpt"
    dcp.save(training_state(), checkpoint_id=folder, no_dist=True)
    assert (folder / ".metadata").is_file()
    return folder


def test_metadata_torch_wrote_passes_the_check(sharded: Path) -> None:
    check_dcp_checkpoint(sharded)
    dcp.FileSystemReader(sharded).read_metadata()  # and torch itself still reads it


def test_metadata_naming_code_is_refused_without_running_it(sharded: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    (sharded / ".metadata").write_bytes(pickle.dumps({"planner_data": ShellPayload(marker)}))
    with pytest.raises(CheckpointError, match=r"\.metadata holds pickled Python objects.*posix\.system"):
        check_dcp_checkpoint(sharded)
    assert not marker.exists()


def test_lightnings_fsdp_checks_the_metadata_before_reading_the_folder(sharded: Path, tmp_path: Path) -> None:
    from lightning.pytorch.strategies import FSDPStrategy

    marker = tmp_path / "payload-ran"
    (sharded / ".metadata").write_bytes(pickle.dumps(ShellPayload(marker)))
    strategy = FSDPStrategy()
    open_tensors_only_first(strategy)
    with pytest.raises(CheckpointError, match="pickled"):
        strategy.load_checkpoint(sharded)
    assert not marker.exists()


def test_a_shard_item_naming_code_is_refused_without_running_it(tmp_path: Path) -> None:
    """torch's own reader unpickles such an item with weights_only=False; the check reads it tensors-only."""
    marker = tmp_path / "payload-ran"
    state = training_state()
    state["loops"]["fit_loop"]["done"] = ShellPayload(marker)  # pickled into a shard file, not .metadata
    folder = tmp_path / "hostile.ckpt"
    dcp.save(state, checkpoint_id=folder, no_dist=True)
    with pytest.raises(CheckpointError, match=r"item 'loops\.fit_loop\.done' holds pickled Python objects"):
        check_dcp_checkpoint(folder)
    assert not marker.exists()


def test_a_truncated_shard_file_is_one_clear_error(sharded: Path) -> None:
    (shard,) = sharded.glob("*.distcp")
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or incomplete"):
        check_dcp_checkpoint(sharded)


def test_truncated_metadata_is_one_clear_error(sharded: Path) -> None:
    data = (sharded / ".metadata").read_bytes()
    (sharded / ".metadata").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or incomplete"):
        check_dcp_checkpoint(sharded)


def test_a_folder_without_dcp_metadata_is_left_to_its_reader(tmp_path: Path) -> None:
    check_dcp_checkpoint(tmp_path)  # nothing to check, no error
