"""``--config experiments/presets/fsdp.yaml`` on a scale preset, through the real CLI on 2 CPU processes:
bf16-mixed (FSDP2's mixed precision), the preset's gradient clipping and validation, a sharded
``last.ckpt`` folder, a resume from that folder, and ``vtp-export`` of it.

The scale preset runs shrunk to the tests' tiny sizes on the embedded data (``shrunk_cli_args``), with
2 processes and bf16-mixed put back in place of the single-process fp32 the shrinking asks for.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from two_rank_run import launcher_free_env

REPO = Path(__file__).resolve().parents[2]
SCALE_S = REPO / "experiments" / "scale" / "vtp_s.yaml"
FSDP_PRESET = REPO / "experiments" / "presets" / "fsdp.yaml"
TIMEOUT_S = 300

pytestmark = [pytest.mark.distributed, pytest.mark.integration, pytest.mark.timeout(3 * TIMEOUT_S)]


def _set(args: list[str], option: str, value: str) -> None:
    args[args.index(option) + 1] = value


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a console command of this checkout (Lightning's launcher re-runs it for rank 1)."""
    binary = Path(sys.executable).parent / command[0]
    return subprocess.run(
        [str(binary), *command[1:]],
        env=launcher_free_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _losses(metrics_csv: Path) -> dict[int, float]:
    with metrics_csv.open() as f:
        return {
            int(row["step"]): float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")
        }


def test_the_fsdp_preset_fits_resumes_from_its_sharded_folder_and_exports(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]]
) -> None:
    root = tmp_path / "run"

    def fit(max_steps: int, *extra: str) -> subprocess.CompletedProcess[str]:
        args = shrunk_cli_args(SCALE_S, root, max_steps=max_steps, checkpoint_every=2)
        assert args[:3] == ["fit", "--config", str(SCALE_S)]
        args[3:3] = ["--config", str(FSDP_PRESET)]  # the one-line switch
        strategy = args.index("--trainer.strategy")
        del args[strategy : strategy + 2]  # the preset's
        _set(args, "--trainer.devices", "2")
        _set(args, "--trainer.precision", "bf16-mixed")
        return _run(["lightning", *args, *extra])

    first = fit(2)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = root / "checkpoints" / "last.ckpt"
    assert folder.is_dir() and (folder / ".metadata").is_file() and len(list(folder.glob("*.distcp"))) == 2

    resumed = fit(3, "--ckpt_path", str(folder))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    losses = _losses(root / "metrics.csv")
    assert sorted(losses) == [0, 1, 2]  # steps 1 and 2, then step 3 after the resume
    assert all(math.isfinite(v) for v in losses.values())

    exported = _run(["vtp-export", str(folder), str(tmp_path / "exported")])
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "exported" / "model.safetensors").is_file()
