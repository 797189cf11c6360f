"""Intervals over seeds, paired differences against AE-only, and the verdict sentences built from them
(on synthetic runs trees: no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats
from synthetic_runs import write_cell

from vtp_lightning.report import build_report
from vtp_lightning.report.intervals import t_interval

GFD = "eval/gfd_fmnist"


@pytest.mark.parametrize("values", [[12.1, 14.3, 13.0], [0.25, 0.5, 0.75, 1.5, -0.2], [3.0, 3.5]])
def test_the_t_interval_agrees_with_scipy(values: list[float]) -> None:
    low, high = stats.t.interval(0.95, len(values) - 1, loc=stats.tmean(values), scale=stats.sem(values))

    interval = t_interval(values)

    assert interval.mean == pytest.approx(sum(values) / len(values))
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))
    assert interval.n == len(values)


def test_one_value_has_no_interval() -> None:
    interval = t_interval([4.0])
    assert (interval.mean, interval.low, interval.high, interval.half_width) == (4.0, None, None, 0.0)


# AE-only and two combinations at budget 1, seeds 0-2. Per seed, CLIP+SSL+AE is about 10 lower
# (better) than AE-only; CLIP+AE is within +-2 of it, changing sign across seeds.
AE = {0: 40.0, 1: 47.0, 2: 43.0}
CLIP_SSL_AE = {0: 30.5, 1: 36.0, 2: 33.1}
CLIP_AE = {0: 41.5, 1: 45.5, 2: 43.8}


@pytest.fixture
def paired_runs(tmp_path: Path) -> Path:
    for combination, values in (("ae", AE), ("clip_ssl_ae", CLIP_SSL_AE), ("clip_ae", CLIP_AE)):
        for seed, value in values.items():
            write_cell(tmp_path, combination, 1, seed, {GFD: value, "eval/gen_class_agreement": 0.5})
    return tmp_path


def scipy_paired(values: dict[int, float]) -> tuple[float, float, float]:
    differences = [values[s] - AE[s] for s in sorted(AE)]
    mean = sum(differences) / len(differences)
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=mean, scale=stats.sem(differences))
    return mean, low, high


def test_differences_are_paired_by_seed_against_ae_only(paired_runs: Path) -> None:
    report = build_report(paired_runs)
    by_combination = {d.combination: d for d in report.differences if d.metric == GFD}
    assert sorted(by_combination) == ["clip_ae", "clip_ssl_ae"]
    for name, values in (("clip_ssl_ae", CLIP_SSL_AE), ("clip_ae", CLIP_AE)):
        interval = by_combination[name].interval
        mean, low, high = scipy_paired(values)
        assert (interval.mean, interval.low, interval.high) == (
            pytest.approx(mean),
            pytest.approx(low),
            pytest.approx(high),
        )
        assert by_combination[name].seeds == (0, 1, 2)


def test_a_resolved_and_an_unresolved_verdict_are_built_from_the_intervals(paired_runs: Path) -> None:
    report = build_report(paired_runs)
    mean, low, high = scipy_paired(CLIP_SSL_AE)
    assert high < 0  # the paired interval excludes 0 (unpaired, the seed spread of ~7 would hide it)
    resolved = (
        f"CLIP+SSL+AE beats AE-only by {-mean:.3g} [{-high:.3g}, {-low:.3g}] gFD at budget 1x "
        "(3 paired seeds, 95% t interval)."
    )
    _, low, high = scipy_paired(CLIP_AE)
    assert low < 0 < high
    unresolved = (
        f"CLIP+AE vs AE-only on gFD at budget 1x: not resolved at this scale: the interval of the "
        f"difference [{low:.3g}, {high:.3g}] includes 0 (3 paired seeds, 95% t interval)."
    )
    assert resolved in report.verdicts and unresolved in report.verdicts
    text = report.results_path.read_text()
    assert f"- {resolved}" in text and f"- {unresolved}" in text
    assert json.loads(report.summary_path.read_text())["verdicts"] == report.verdicts
    assert "paired_differences" in report.figures


def test_the_table_shows_the_mean_and_its_t_interval(paired_runs: Path) -> None:
    text = build_report(paired_runs).results_path.read_text()
    values = list(AE.values())
    low, high = stats.t.interval(0.95, 2, loc=stats.tmean(values), scale=stats.sem(values))
    (row,) = [line for line in text.splitlines() if line.startswith("| ae | 1x |")]
    assert f"| {stats.tmean(values):.4g} [{low:.4g}, {high:.4g}] |" in row
