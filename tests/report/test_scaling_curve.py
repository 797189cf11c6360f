"""The scaling curve (issue 24) on synthetic cell folders: verdicts, paired slopes, resolution, the
two-draw pairing and the written report. Expected values are computed here with scipy."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats
from synthetic_runs import FLOPS_PER_STEP, STEPS_PER_BUDGET, write_cell

from vtp_lightning.report.cli import main as report_main
from vtp_lightning.report.scaling_curve import (
    budget_changes,
    read_scaling_cells,
    resolution,
    slope_comparison,
)
from vtp_lightning.report.scaling_report import build_scaling_report
from vtp_lightning.report.scaling_verdicts import saturation_verdict

BUDGETS = (1, 4, 16)
SEEDS = (0, 1, 2)
SEED_SHIFT = {0: 0.0, 1: 0.4, 2: -0.3}  # the same tokenizer-seed offset at every budget: pairing removes it


def flops_at(budget: float) -> float:
    """What synthetic_runs logs: budget x steps-per-budget steps, each FLOPS_PER_STEP."""
    return budget * STEPS_PER_BUDGET * FLOPS_PER_STEP


def write_curve(runs: Path, combination: str, gfd: dict[float, dict[int, float]]) -> None:
    for budget, by_seed in gfd.items():
        for seed, value in by_seed.items():
            evals = {
                "eval/gfd_fmnist": value,
                "eval/gfd_fmnist_inf": value - 0.5,
                "eval/gen_class_agreement": 0.5,
                "eval/rfd_fmnist": 5.0 / budget,
            }
            write_cell(runs, combination, budget, seed, evals)


def shifted(levels: dict[float, float], wobble: dict[float, dict[int, float]] | None = None) -> dict:
    wobble = wobble or {}
    return {
        b: {s: v + SEED_SHIFT[s] + wobble.get(b, {}).get(s, 0.0) for s in SEEDS} for b, v in levels.items()
    }


# AE-only: falls from 1x to 4x, then flat (seed-to-seed changes of both signs) from 4x to 16x
SATURATING = shifted({1: 9.0, 4: 6.0, 16: 6.0}, {16: {0: 0.3, 1: -0.2, 2: 0.1}})
# AE-only: still falling by about 1.5 at every step
FALLING = shifted({1: 9.0, 4: 7.5, 16: 6.0}, {16: {0: 0.1, 1: -0.1, 2: 0.05}})
# CLIP+SSL+AE: falls faster over 4x -> 16x
UNDERSTANDING = shifted({1: 10.0, 4: 7.0, 16: 4.0}, {16: {0: -0.2, 1: 0.3, 2: 0.0}})


def test_a_flat_ae_curve_stops_improving_after_the_budget_where_it_flattens(tmp_path: Path) -> None:
    write_curve(tmp_path, "ae", SATURATING)
    changes = budget_changes(read_scaling_cells(tmp_path, ["ae"]), "ae")

    sentence = saturation_verdict("ae", changes)

    assert sentence.startswith(f"AE-only generation stops improving after {flops_at(4):.2e} FLOPs")
    assert "includes 0" in sentence


def test_a_rising_ae_curve_stops_improving_and_says_it_worsens(tmp_path: Path) -> None:
    write_curve(tmp_path, "ae", shifted({1: 9.0, 4: 6.0, 16: 7.0}, {16: {0: 0.1, 1: -0.1, 2: 0.0}}))
    sentence = saturation_verdict("ae", budget_changes(read_scaling_cells(tmp_path, ["ae"]), "ae"))
    assert sentence.startswith(f"AE-only generation stops improving after {flops_at(4):.2e} FLOPs")
    assert "worsens by" in sentence


def test_a_still_falling_curve_shows_no_saturation_up_to_its_largest_budget(tmp_path: Path) -> None:
    write_curve(tmp_path, "ae", FALLING)
    sentence = saturation_verdict("ae", budget_changes(read_scaling_cells(tmp_path, ["ae"]), "ae"))
    assert sentence.startswith(f"AE-only generation: no saturation up to {flops_at(16):.2e} FLOPs")


def scipy_interval(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, low, high


def test_the_slope_difference_over_the_last_step_matches_scipy(tmp_path: Path) -> None:
    write_curve(tmp_path, "ae", SATURATING)
    write_curve(tmp_path, "clip_ssl_ae", UNDERSTANDING)
    doublings = math.log2(flops_at(16) / flops_at(4))  # 2: both combinations' FLOPs grow 4x
    per_seed = [
        (UNDERSTANDING[16][s] - UNDERSTANDING[4][s]) / doublings
        - (SATURATING[16][s] - SATURATING[4][s]) / doublings
        for s in SEEDS
    ]
    mean, low, high = scipy_interval(per_seed)

    slopes = slope_comparison(read_scaling_cells(tmp_path, ["ae", "clip_ssl_ae"]))

    assert slopes is not None
    assert (slopes.low, slopes.high, slopes.seeds) == (4, 16, SEEDS)
    assert slopes.difference.mean == pytest.approx(mean)
    assert (slopes.difference.low, slopes.difference.high) == (pytest.approx(low), pytest.approx(high))
    assert slopes.difference.high < 0  # CLIP+SSL+AE falls faster than the flat AE-only curve


def test_the_resolution_is_the_t_half_width_of_the_mean_paired_variance(tmp_path: Path) -> None:
    write_curve(tmp_path, "ae", SATURATING)
    cells = read_scaling_cells(tmp_path, ["ae"])
    step_differences = [
        [SATURATING[4][s] - SATURATING[1][s] for s in SEEDS],
        [SATURATING[16][s] - SATURATING[4][s] for s in SEEDS],
    ]
    variance = statistics.fmean(statistics.variance(d) for d in step_differences)
    expected = stats.t.ppf(0.975, len(SEEDS) - 1) * math.sqrt(variance / len(SEEDS))

    found = resolution(cells, budget_changes(cells, "ae"))

    assert (found.n, found.comparisons) == (3, 2)
    assert found.half_width == pytest.approx(expected)


def add_draw(runs: Path, combination: str, budget: float, seed: int, protocol_seed: int, gfd: float) -> None:
    """A second protocol draw, as protocol_eval --out writes it into the cell."""
    path = runs / combination / f"{budget:g}x" / f"seed{seed}" / "generation" / "protocol_eval.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "checkpoint": "x",
        "protocol_seed": protocol_seed,
        "dit_steps": 600,
        "fd": gfd,
        "fd_inf": gfd - 0.5,
    }
    with path.open("a") as file:
        file.write(json.dumps(row) + "\n")


def test_a_cell_is_the_mean_of_its_draws_and_comparisons_use_the_draws_both_sides_share(
    tmp_path: Path,
) -> None:
    write_curve(tmp_path, "ae", SATURATING)
    second = {s: SATURATING[16][s] - 1.0 for s in SEEDS}  # the 16x cells' second draws (seed + 100)
    for seed in SEEDS:
        add_draw(tmp_path, "ae", 16, seed, seed + 100, second[seed])
    cells = {(c.budget, c.seed): c for c in read_scaling_cells(tmp_path, ["ae"])}

    assert cells[(16, 0)].value("fd") == pytest.approx((SATURATING[16][0] + second[0]) / 2)
    step = budget_changes(list(cells.values()), "ae")[-1]
    # the 4x cells drew only protocol seed k: the 16x side uses its seed-k draw alone
    assert step.differences == pytest.approx(tuple(SATURATING[16][s] - SATURATING[4][s] for s in SEEDS))
    found = resolution(list(cells.values()), [step])
    within = statistics.fmean(statistics.variance([SATURATING[16][s], second[s]]) for s in SEEDS)
    assert found.protocol_sd == pytest.approx(math.sqrt(within))


def test_the_report_lists_every_cell_the_verdicts_and_the_redraw_command(tmp_path: Path) -> None:
    grid = tmp_path / "runs" / "paper"
    write_curve(grid, "ae", SATURATING)
    write_curve(grid, "clip_ssl_ae", UNDERSTANDING)
    out = tmp_path / "out"
    record = {"started_at": "a", "finished_at": "b", "wall_time_s": 5400.0, "estimate_s": 6120.0,
              "reuse_check": ["ae/1x/seed0 trained today matches the archived cell"]}  # fmt: skip
    (grid / "scaling_run.jsonl").write_text(json.dumps(record) + "\n")

    report = build_scaling_report(grid, out, archive_dir=tmp_path / "archive")

    text = report.markdown.read_text()
    assert report.figure.is_file() and report.figure.stat().st_size > 0
    for combination in ("AE-only", "CLIP+SSL+AE"):
        for budget in BUDGETS:
            for seed in SEEDS:
                assert f"| {combination} | {budget}x | {seed} |" in text
    assert all(sentence in text for sentence in report.verdicts)
    assert "stops improving after" in report.verdicts[0] and "no saturation" in report.verdicts[1]
    assert "Wall time of the runs: 1.50 h in 1 invocation(s)" in text and "(estimate 1.70 h)" in text
    assert "checked: ae/1x/seed0 trained today matches the archived cell" in text
    assert "restore paper" in report.redraw and "--scaling-curve" in report.redraw
    assert json.loads(report.summary.read_text())["verdicts"] == report.verdicts


def test_the_cli_refuses_a_folder_without_cells_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert report_main([str(tmp_path), "--scaling-curve", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("vtp-report: error: no finished cell")
