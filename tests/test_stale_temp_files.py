"""A kill -9 during a save leaves its temporary file beside the target; the next save removes it.

Three kills used to leave three hidden ``.last.ckpt.XXXX.tmp`` files of 100-150 MB that no resumed
run removed. A temporary file whose process still runs (a save in progress) is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vtp_lightning.cli import main as cli_main
from vtp_lightning.weights.checkpoint_file import atomic_torch_save, load_checkpoint

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

# A process that starts a real atomic save of ``argv[1]`` and stalls half-way through writing it.
_STALLED_SAVE = """
import sys, time, torch
from vtp_lightning.weights.checkpoint_file import atomic_torch_save
def stalled(obj, f, *args, **kwargs):
    f.write(b"PK\\x03\\x04 half a checkpoint")
    f.flush()
    print("writing", flush=True)
    time.sleep(600)
torch.save = stalled
atomic_torch_save({"step": 1}, sys.argv[1])
"""


@pytest.fixture
def stalled_save() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """``stalled_save(target)``: a live process caught half-way through saving ``target``."""
    started: list[subprocess.Popen[str]] = []

    def start(target: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", _STALLED_SAVE, str(target)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "writing"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _kill_9(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_the_next_save_removes_the_temporary_files_of_killed_saves(
    tmp_path: Path, stalled_save: Callable[[Path], subprocess.Popen[str]]
) -> None:
    folder = tmp_path / "checkpoints"
    for kill in range(3):  # three kills, as in the report: each new save removes the one before
        _kill_9(stalled_save(folder / "last.ckpt"))
        assert len(_temp_files(folder)) == 1, f"after kill {kill + 1}"
    assert not (folder / "last.ckpt").exists()
    atomic_torch_save({"step": 2}, folder / "epoch=0-step=2.ckpt")  # any save into the folder
    assert _temp_files(folder) == []
    assert load_checkpoint(folder / "epoch=0-step=2.ckpt")["step"] == 2


def test_the_temporary_file_of_a_save_still_running_is_kept(
    tmp_path: Path, stalled_save: Callable[[Path], subprocess.Popen[str]]
) -> None:
    folder = tmp_path / "checkpoints"
    running = stalled_save(folder / "last.ckpt")
    (in_progress,) = _temp_files(folder)
    atomic_torch_save({"step": 2}, folder / "other.ckpt")
    assert _temp_files(folder) == [in_progress]
    _kill_9(running)
    atomic_torch_save({"step": 3}, folder / "other.ckpt")
    assert _temp_files(folder) == []


def test_a_temporary_file_of_another_host_goes_only_once_long_untouched(tmp_path: Path) -> None:
    fresh = tmp_path / ".last.ckpt.node-b-4242.abcd1234.tmp"
    old = tmp_path / ".last.ckpt.node-b-4343.wxyz9876.tmp"
    for path in (fresh, old):
        path.write_bytes(b"PK\x03\x04 half")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    atomic_torch_save({"step": 1}, tmp_path / "last.ckpt")
    assert _temp_files(tmp_path) == [fresh.name]


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers")
def test_a_run_restarted_after_a_kill_during_a_save_leaves_no_temporary_file(
    tmp_path: Path,
    stalled_save: Callable[[Path], subprocess.Popen[str]],
    shrunk_cli_args: Callable[..., list[str]],
) -> None:
    checkpoints = tmp_path / "run" / "checkpoints"
    _kill_9(stalled_save(checkpoints / "last.ckpt"))
    assert len(_temp_files(checkpoints)) == 1
    assert cli_main(shrunk_cli_args(EXPERIMENTS / "ae.yaml", tmp_path / "run", max_steps=1)) == 0
    assert _temp_files(checkpoints) == []
    assert load_checkpoint(checkpoints / "last.ckpt")["global_step"] == 1
