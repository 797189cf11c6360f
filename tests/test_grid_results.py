"""``scripts/grid_results.py``: finished cells go to git and come back without their checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "grid_results.py"


def make_cell(root: Path, name: str, finished: bool) -> Path:
    cell = root / name
    (cell / "checkpoints").mkdir(parents=True)
    (cell / "checkpoints" / "last.ckpt").write_bytes(b"large weights")
    (cell / "metrics.csv").write_text("step,train/loss\n0,1.0\n")
    (cell / "summary.json").write_text('{"rfid": 12.5}')
    (cell / "attempts" / "1").mkdir(parents=True)
    (cell / "attempts" / "1" / "metrics.csv").write_text("step\n0\n")
    (cell / "generation").mkdir()
    (cell / "generation" / "protocol_gfid.json").write_text("{}")
    if finished:
        (cell / "DONE").write_text("")
    return cell


def test_archive_then_restore_brings_back_every_kept_file_of_finished_cells_and_no_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script(SCRIPT)
    runs, archive = tmp_path / "runs", tmp_path / "archive"
    make_cell(runs / "paper", "clip_ae/1x/seed0", finished=True)
    make_cell(runs / "paper", "clip_ae/1x/seed1", finished=False)  # interrupted: not archived
    options = ["--runs-dir", str(runs), "--archive-dir", str(archive)]
    assert script.main(["archive", "paper", *options]) == 0
    archived = archive / "paper" / "clip_ae" / "1x"
    assert sorted(p.relative_to(archived).as_posix() for p in archived.rglob("*") if p.is_file()) == [
        "seed0/DONE",
        "seed0/attempts/1/metrics.csv",
        "seed0/generation/protocol_gfid.json",
        "seed0/metrics.csv",
        "seed0/summary.json",
    ]
    fresh = tmp_path / "fresh_runs"
    assert script.main(["restore", "paper", "--runs-dir", str(fresh), "--archive-dir", str(archive)]) == 0
    restored = fresh / "paper" / "clip_ae" / "1x" / "seed0"
    assert (restored / "DONE").is_file()
    assert (restored / "summary.json").read_text() == '{"rfid": 12.5}'
    assert not (restored / "checkpoints").exists()
    assert "restored 1 of 1 finished cells" in capsys.readouterr().out


def test_restore_never_overwrites_a_cell_that_finished_locally(tmp_path: Path) -> None:
    script = load_script(SCRIPT)
    runs, archive = tmp_path / "runs", tmp_path / "archive"
    make_cell(archive / "paper", "clip_ae/1x/seed0", finished=True)
    local = make_cell(runs / "paper", "clip_ae/1x/seed0", finished=True)
    (local / "summary.json").write_text('{"rfid": 9.0}')
    assert script.main(["restore", "paper", "--runs-dir", str(runs), "--archive-dir", str(archive)]) == 0
    assert (local / "summary.json").read_text() == '{"rfid": 9.0}'


def test_nothing_finished_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script(SCRIPT)
    make_cell(tmp_path / "runs" / "paper", "clip_ae/1x/seed0", finished=False)
    code = script.main(
        ["archive", "paper", "--runs-dir", str(tmp_path / "runs"), "--archive-dir", str(tmp_path / "a")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        len(err) == 1 and err[0].startswith("error: no finished cells") and "make grid GRID=paper" in err[0]
    )
