"""vtp-report on synthetic runs trees: which files appear, what the table says, how axes are labelled."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from scipy import stats
from synthetic_runs import BUDGETS, COMBINATIONS, FLOPS_PER_STEP, STEPS_PER_BUDGET, fmnist_evals, write_cell

from vtp_lightning.errors import DataError
from vtp_lightning.report import Report, build_report

FIGURES = (
    "generation_vs_flops",
    "reconstruction_vs_generation",
    "understanding_vs_generation",
    "bars_at_3x",
    "paired_differences",
)


def all_labels(report: Report) -> list[str]:
    return [text for info in report.figures.values() for ax in info.axes for text in ax.values()]


def test_every_figure_results_md_and_summary_are_written(fmnist_report: Report) -> None:
    report = fmnist_report
    assert report.out_dir.name == "report"
    assert sorted(report.figures) == sorted(FIGURES)
    for name in FIGURES:
        path = report.out_dir / f"{name}.png"
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.results_path == report.out_dir / "results.md"
    summary = json.loads(report.summary_path.read_text())
    assert len(summary["groups"]) == len(COMBINATIONS) * len(BUDGETS)
    assert report.notes == []


def test_the_table_has_a_row_per_combination_and_budget_with_mean_and_interval_over_seeds(
    fmnist_report: Report,
) -> None:
    text = fmnist_report.results_path.read_text()
    (results,) = [block for block in text.split("\n\n") if block.startswith("| combination")]
    rows = [
        line
        for line in results.splitlines()
        if line.startswith("| ") and not line.startswith("| combination")
    ]
    assert [row.split(" | ")[:3] for row in rows] == [
        [f"| {c}", f"{b}x", "2"] for c in COMBINATIONS for b in BUDGETS
    ]
    seeds = [fmnist_evals("ae", 3, seed)["eval/gfd_fmnist"] for seed in (0, 1)]
    low, high = stats.t.interval(0.95, 1, loc=statistics.fmean(seeds), scale=stats.sem(seeds))
    expected = f"{statistics.fmean(seeds):.4g} [{low:.4g}, {high:.4g}]"
    ae_3x = next(row for row in rows if row.startswith("| ae | 3x |"))
    assert ae_3x.split(" | ")[4] == expected
    assert ae_3x.split(" | ")[3].startswith(f"{3 * STEPS_PER_BUDGET * FLOPS_PER_STEP:.4g}")
    assert "| – |" in ae_3x  # ae has no zero-shot metric


def test_a_single_seed_shows_no_spread(tmp_path: Path) -> None:
    write_cell(tmp_path, "ae", 1, 0, fmnist_evals("ae", 1, 0))
    text = build_report(tmp_path).results_path.read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| ae |")]
    assert "[" not in row and f"| {fmnist_evals('ae', 1, 0)['eval/gfd_fmnist']:.4g} |" in row


def test_axis_labels_name_the_fmnist_feature_extractor_and_never_say_fid(fmnist_report: Report) -> None:
    report = fmnist_report
    scaling = report.figures["generation_vs_flops"].axes[0]
    assert scaling["ylabel"].startswith("gFD (fmnist-net features)")
    assert "FLOPs" in scaling["xlabel"] and "log" in scaling["xlabel"]
    tradeoff = report.figures["reconstruction_vs_generation"].axes[0]
    assert tradeoff["xlabel"].startswith("rFD (fmnist-net features)")
    assert not any("FID" in label for label in all_labels(report))


def test_axis_labels_name_inception_when_the_runs_report_fid(tmp_path: Path) -> None:
    for combination in ("ae", "clip_ae"):
        for budget in (1, 3):
            write_cell(tmp_path, combination, budget, 0, {"eval/gfid": 50 - budget, "eval/rfid": 2 / budget})
    report = build_report(tmp_path)
    assert report.figures["generation_vs_flops"].axes[0]["ylabel"].startswith("gFID (Inception)")
    assert report.figures["reconstruction_vs_generation"].axes[0]["xlabel"].startswith("rFID (Inception)")


def test_the_reconstruction_figure_reports_how_reconstruction_ranks_against_generation(
    tmp_path: Path,
) -> None:
    """AE-like runs: reconstruction improves with budget while generation worsens -> rank correlation -1."""
    for budget in (1, 3, 10):
        write_cell(
            tmp_path, "ae", budget, 0, {"eval/gfd_fmnist": 20 + budget, "eval/rfd_fmnist": 10 / budget}
        )
    info = build_report(tmp_path).figures["reconstruction_vs_generation"]
    assert info.extra["spearman"]["eval/rfd_fmnist"] == pytest.approx(-1.0)


def test_missing_metrics_skip_their_figures_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cell(tmp_path, "ae", 1, 0, {"eval/psnr": 21.0})
    write_cell(tmp_path, "clip_ae", 1, 0, {"eval/psnr": 22.0})
    report = build_report(tmp_path)
    assert sorted(report.figures) == ["bars_at_1x"]
    skipped = " ".join(report.notes)
    for name in FIGURES[:3]:
        assert f"{name}: skipped" in skipped
    assert "## Notes" in report.results_path.read_text()


def test_the_compute_at_an_evaluation_is_the_latest_logged_at_or_before_its_step(tmp_path: Path) -> None:
    directory = tmp_path / "ae/1x/seed0"
    directory.mkdir(parents=True)
    (directory / "metrics.csv").write_text(
        "step,compute/flops,eval/gfd_fmnist\n0,10,\n4,50,\n4,,7.0\n9,100,\n9,,5.0\n"
    )
    (directory / "DONE").write_text("{}")
    (cell,) = build_report(tmp_path).cells
    assert cell.evals["eval/gfd_fmnist"].value == 5.0
    assert cell.evals["eval/gfd_fmnist"].compute["compute/flops"] == 100
    assert cell.final_compute["compute/flops"] == 100


def test_an_interrupted_attempts_metrics_are_read_before_the_resumed_run(tmp_path: Path) -> None:
    directory = tmp_path / "ae/1x/seed0"
    (directory / "attempts/1").mkdir(parents=True)
    (directory / "attempts/1/metrics.csv").write_text(
        "step,compute/flops,eval/probe_cls_top1\n0,10,\n1,20,0.3\n"
    )
    (directory / "metrics.csv").write_text("step,compute/flops\n2,30,\n3,40,\n")
    (directory / "DONE").write_text("{}")
    (cell,) = build_report(tmp_path).cells
    assert cell.evals["eval/probe_cls_top1"].value == 0.3
    assert cell.evals["eval/probe_cls_top1"].compute["compute/flops"] == 20
    assert cell.final_compute["compute/flops"] == 40


def test_unfinished_cells_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    write_cell(tmp_path, "ae", 1, 0, {"eval/psnr": 20.0})
    write_cell(tmp_path, "ssl_ae", 1, 0, {"eval/psnr": 21.0}, done=False)
    report = build_report(tmp_path)
    assert [g.combination for g in report.groups] == ["ae"]
    assert any("unfinished" in note and "ssl_ae/1x/seed0" in note for note in report.notes)
    included = build_report(tmp_path, include_unfinished=True)
    assert [g.combination for g in included.groups] == ["ae", "ssl_ae"]


def test_an_empty_runs_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no cells under"):
        build_report(tmp_path)


def test_pointing_at_the_folder_of_grids_suggests_the_grid(fmnist_runs: Path) -> None:
    with pytest.raises(DataError, match=f"pass one of: {fmnist_runs}"):
        build_report(fmnist_runs.parent)
