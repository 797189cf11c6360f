"""The scaling curve (issue 24): generation against measured tokenizer training FLOPs, and its verdicts.

A cell (one tokenizer: combination, budget, tokenizer seed ``k``) holds one or more gFD protocol
draws: the one its training run made (protocol seed ``k``, read from ``metrics.csv`` and the seed
from ``generation/protocol_step*.json``) and those ``python -m vtp_lightning.protocol_eval`` added
(``generation/protocol_eval.jsonl``, protocol seed ``k + 100``). A cell's value is the mean of its
draws. Every comparison is *paired*: the same tokenizer seed on both sides, and on each side the
mean over the protocol seeds both sides have (common random numbers); its interval is the 95 %
Student-t interval over tokenizer seeds (``scipy.stats.t``, n - 1 degrees of freedom).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats

from vtp_lightning.errors import DataError
from vtp_lightning.grid_layout import cell_at, cell_directories, is_done
from vtp_lightning.metric_names import distance_metric_name, generation_metric_names
from vtp_lightning.report.intervals import CONFIDENCE, Interval, t_interval
from vtp_lightning.report.metric_names import FLOPS
from vtp_lightning.report.runs import metrics_files, read_cell_metrics

FIELDS = ("fd", "fd_inf", "class_agreement")
PROTOCOL_ROWS = Path("generation") / "protocol_eval.jsonl"
BASELINE, UNDERSTANDING = "ae", "clip_ssl_ae"


@dataclass
class ScalingCell:
    combination: str
    budget: float
    seed: int
    directory: Path
    flops: float | None
    rfd: float | None
    draws: dict[int, dict[str, float]] = field(default_factory=dict)  # protocol seed -> field -> value

    def value(self, name: str, protocol_seeds: Iterable[int] | None = None) -> float | None:
        """Mean of ``name`` over the given protocol draws (default: all of them)."""
        chosen = self.draws if protocol_seeds is None else {s: self.draws[s] for s in protocol_seeds}
        values = [d[name] for d in chosen.values() if name in d]
        return statistics.fmean(values) if values else None


def _training_draw_seed(directory: Path, seed: int) -> int:
    """The protocol seed of the training run's evaluation: its last protocol JSON says; else the
    cell's seed (the grid's configs leave the protocol seed to ``seed_everything``)."""
    records = sorted((directory / "generation").glob("protocol_step*.json"))
    if records:
        protocol = json.loads(records[-1].read_text()).get("protocol") or {}
        if isinstance(protocol.get("seed"), int):
            return protocol["seed"]
    return seed


def read_scaling_cell(directory: Path, extractor: str = "fmnist") -> ScalingCell:
    cell = cell_at(directory)
    files = metrics_files(directory)
    if cell is None or not files:
        raise DataError(f"{directory} is not a finished grid cell with a metrics.csv")
    evals, final = read_cell_metrics(files)
    names = generation_metric_names(extractor)
    rfd = evals.get(f"eval/{distance_metric_name('r', extractor)}")
    result = ScalingCell(
        cell.combination, cell.budget, cell.seed, directory, final.get(FLOPS), rfd.value if rfd else None
    )
    logged = {f: evals[names[f]].value for f in FIELDS if names[f] in evals}
    if logged:
        result.draws[_training_draw_seed(directory, cell.seed)] = logged
    rows = directory / PROTOCOL_ROWS
    if rows.is_file():
        for line in rows.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                draw = {f: row[f] for f in FIELDS if row.get(f) is not None}
                result.draws.setdefault(row["protocol_seed"], draw)
    return result


def read_scaling_cells(
    grid_dir: Path, combinations: Sequence[str], extractor: str = "fmnist"
) -> list[ScalingCell]:
    """The finished cells of ``combinations`` under one grid folder."""
    directories = [
        d for d in cell_directories(grid_dir) if is_done(d) and d.parent.parent.name in combinations
    ]
    if not directories:
        raise DataError(
            f"no finished cell of {', '.join(combinations)} under {grid_dir} "
            "(restore the archived cells: python scripts/grid_results.py restore paper --runs-dir ...)"
        )
    return [read_scaling_cell(d, extractor) for d in directories]


# -- pairing ------------------------------------------------------------------------------------


def _index(cells: Iterable[ScalingCell]) -> dict[tuple[str, float, int], ScalingCell]:
    return {(c.combination, c.budget, c.seed): c for c in cells}


def paired(group: Sequence[ScalingCell], name: str) -> list[float] | None:
    """Each cell's mean of ``name`` over the protocol seeds every cell of ``group`` drew."""
    common = set.intersection(*(set(c.draws) for c in group))
    if not common:
        return None
    values = [c.value(name, common) for c in group]
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


def budgets_of(cells: Iterable[ScalingCell], combination: str) -> list[float]:
    return sorted({c.budget for c in cells if c.combination == combination})


@dataclass(frozen=True)
class Point:
    """One combination at one budget: means over tokenizer seeds of each cell's mean over its draws."""

    combination: str
    budget: float
    seeds: tuple[int, ...]
    draws: tuple[int, ...]  # protocol draws per cell, in seed order
    flops: Interval
    value: Interval


def curve(cells: Sequence[ScalingCell], combination: str, name: str) -> list[Point]:
    """``name`` = a field of :data:`FIELDS` or ``"rfd"``."""
    points = []
    for budget in budgets_of(cells, combination):
        group = sorted(
            (c for c in cells if (c.combination, c.budget) == (combination, budget)), key=lambda c: c.seed
        )
        values = [(c, c.rfd if name == "rfd" else c.value(name)) for c in group]
        values = [(c, v) for c, v in values if v is not None and c.flops is not None]
        if values:
            points.append(
                Point(
                    combination,
                    budget,
                    tuple(c.seed for c, _ in values),
                    tuple(len(c.draws) for c, _ in values),
                    t_interval([c.flops for c, _ in values]),  # type: ignore[misc]
                    t_interval([v for _, v in values]),
                )
            )
    return points


@dataclass(frozen=True)
class Change:
    """A paired difference between two sets of cells, seed by seed: ``after - before``."""

    label: str
    before: float  # mean FLOPs (or budget) of the "before" side
    after: float
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    interval: Interval


def budget_changes(cells: Sequence[ScalingCell], combination: str, name: str = "fd") -> list[Change]:
    """Consecutive budgets of one combination: value(next budget) - value(budget), paired by seed."""
    index, changes = _index(cells), []
    budgets = budgets_of(cells, combination)
    for low, high in zip(budgets, budgets[1:]):
        seeds, diffs, flops = [], [], []
        for seed in sorted({c.seed for c in cells}):
            pair = [index.get((combination, b, seed)) for b in (low, high)]
            values = paired(pair, name) if None not in pair else None  # type: ignore[arg-type]
            if values is not None and all(c.flops is not None for c in pair):  # type: ignore[union-attr]
                seeds.append(seed)
                diffs.append(values[1] - values[0])
                flops.append((pair[0].flops, pair[1].flops))  # type: ignore[union-attr]
        if seeds:
            changes.append(
                Change(
                    f"{combination} {low:g}x→{high:g}x",
                    statistics.fmean(f[0] for f in flops),
                    statistics.fmean(f[1] for f in flops),
                    tuple(seeds),
                    tuple(diffs),
                    t_interval(diffs),
                )
            )
    return changes


def combination_gaps(
    cells: Sequence[ScalingCell], name: str = "fd", baseline: str = BASELINE, other: str = UNDERSTANDING
) -> list[Change]:
    """At each budget both combinations reached: value(other) - value(baseline), paired by seed."""
    index, gaps = _index(cells), []
    for budget in sorted(set(budgets_of(cells, baseline)) & set(budgets_of(cells, other))):
        seeds, diffs = [], []
        for seed in sorted({c.seed for c in cells}):
            pair = [index.get((baseline, budget, seed)), index.get((other, budget, seed))]
            values = paired(pair, name) if None not in pair else None  # type: ignore[arg-type]
            if values is not None:
                seeds.append(seed)
                diffs.append(values[1] - values[0])
        if seeds:
            label = f"{other} − {baseline} at {budget:g}x"
            gaps.append(Change(label, budget, budget, tuple(seeds), tuple(diffs), t_interval(diffs)))
    return gaps


@dataclass(frozen=True)
class SlopeComparison:
    """gFD change per doubling of measured FLOPs over one budget step, per combination and their
    difference (``other - baseline``), each paired by tokenizer seed."""

    low: float
    high: float
    seeds: tuple[int, ...]
    baseline: Interval
    other: Interval
    difference: Interval


def slope_comparison(
    cells: Sequence[ScalingCell], name: str = "fd", baseline: str = BASELINE, other: str = UNDERSTANDING
) -> SlopeComparison | None:
    """Over the last budget step that both combinations reached with at least 2 paired seeds:
    per seed, slope = (value(high) - value(low)) / log2(FLOPs(high) / FLOPs(low)) with each cell's
    own measured FLOPs, the four cells averaged over the protocol seeds they all drew."""
    index = _index(cells)
    budgets = sorted(set(budgets_of(cells, baseline)) & set(budgets_of(cells, other)))
    for low, high in reversed(list(zip(budgets, budgets[1:]))):
        seeds, slopes = [], []
        for seed in sorted({c.seed for c in cells}):
            four = [index.get((c, b, seed)) for c in (baseline, other) for b in (low, high)]
            if None in four or any(c.flops is None for c in four):  # type: ignore[union-attr]
                continue
            values = paired(four, name)  # type: ignore[arg-type]
            if values is None:
                continue
            a_low, a_high, o_low, o_high = four
            seeds.append(seed)
            slopes.append(
                (
                    (values[1] - values[0]) / math.log2(a_high.flops / a_low.flops),  # type: ignore[union-attr,operator]
                    (values[3] - values[2]) / math.log2(o_high.flops / o_low.flops),  # type: ignore[union-attr,operator]
                )
            )
        if len(seeds) >= 2:
            return SlopeComparison(
                low,
                high,
                tuple(seeds),
                t_interval([s[0] for s in slopes]),
                t_interval([s[1] for s in slopes]),
                t_interval([s[1] - s[0] for s in slopes]),
            )
    return None


@dataclass(frozen=True)
class Resolution:
    """The smallest difference the design resolves at 95 %: the half-width of a paired-difference
    interval, ``t_{0.975, n-1} * sqrt(mean variance of the paired differences) / sqrt(n)``, over the
    comparisons with ``n`` paired seeds; and the protocol's own SD from cells with two or more draws."""

    half_width: float | None
    n: int
    comparisons: int
    protocol_sd: float | None
    protocol_cells: int


def resolution(cells: Sequence[ScalingCell], changes: Sequence[Change], name: str = "fd") -> Resolution:
    sizes = [len(c.differences) for c in changes if len(c.differences) >= 2]
    n = max(set(sizes), key=sizes.count) if sizes else 0
    variances = [statistics.variance(c.differences) for c in changes if len(c.differences) == n and n >= 2]
    half = (
        float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * math.sqrt(statistics.fmean(variances) / n)
        if variances
        else None
    )
    within = [
        statistics.variance(values)
        for c in cells
        if len(values := [d[name] for d in c.draws.values() if name in d]) >= 2
    ]
    sd = math.sqrt(statistics.fmean(within)) if within else None
    return Resolution(half, n, len(variances), sd, len(within))
