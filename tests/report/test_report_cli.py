"""The vtp-report command: output folder, printed notes, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_runs import write_cell

from vtp_lightning.report.cli import main


def test_report_goes_to_the_folder_given_with_out(fmnist_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    assert main([str(fmnist_runs), "--out", str(out)]) == 0
    assert (out / "results.md").is_file()
    assert len(list(out.glob("*.png"))) == 5  # four comparison figures and the paired differences


def test_skipped_figures_are_printed_as_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cell(tmp_path, "ae", 1, 0, {"eval/psnr": 20.0})
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "note: generation_vs_flops: skipped" in out
    assert f"wrote {tmp_path / 'report' / 'results.md'}" in out


def test_no_cells_exits_2_with_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vtp-report: error:") and "does not exist" in err and "\n" not in err
