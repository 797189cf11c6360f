"""Intervals over seeds, paired differences against the AE-only cell, and verdicts built from them.

A cell's value is a mean over seeds with a 95 % Student-t interval (``scipy.stats.t``). A
comparison between two combinations at one budget is *paired*: grid seed ``k`` trains both
tokenizers with seed ``k`` and evaluates both with protocol seed ``k`` (common random numbers), so
the difference is taken seed by seed and the interval is that of the mean difference. A verdict
sentence says which side wins only when that interval excludes 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import stats

from vtp_lightning.grid_layout import format_budget
from vtp_lightning.report.metric_names import lower_is_better, short_label
from vtp_lightning.report.runs import CellResult

CONFIDENCE = 0.95
BASELINE = "ae"


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with a two-sided t interval; ``low``/``high`` are None below 2 values."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float:
        """For error bars: zero when there is no interval to show."""
        return 0.0 if self.low is None or self.high is None else (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """``mean ± t_{(1+c)/2, n-1} * s / sqrt(n)``; no interval for one value, zero width for no spread."""
    n = len(values)
    if n == 0:
        raise ValueError("an interval needs at least one value")
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, None, None, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Difference:
    """``combination - baseline`` of one metric at one budget, paired by seed."""

    metric: str
    combination: str
    baseline: str
    budget: float
    seeds: tuple[int, ...]
    interval: Interval


def display_name(combination: str) -> str:
    """``clip_ssl_ae`` -> ``CLIP+SSL+AE``; the reconstruction-only baseline reads ``AE-only``."""
    return "AE-only" if combination == BASELINE else combination.upper().replace("_", "+")


def paired_differences(
    cells: Iterable[CellResult], metric: str, baseline: str = BASELINE
) -> list[Difference]:
    """For every (combination, budget) with baseline cells at the same budget and seeds: the paired
    differences, seed by seed, and their t interval."""
    values: dict[tuple[str, float], dict[int, float]] = {}
    for cell in cells:
        if metric in cell.evals:
            values.setdefault((cell.combination, cell.budget), {})[cell.seed] = cell.evals[metric].value
    differences = []
    for (combination, budget), by_seed in sorted(values.items()):
        reference = values.get((baseline, budget))
        if combination == baseline or reference is None:
            continue
        seeds = tuple(sorted(set(by_seed) & set(reference)))
        if not seeds:
            continue
        interval = t_interval([by_seed[s] - reference[s] for s in seeds])
        differences.append(Difference(metric, combination, baseline, budget, seeds, interval))
    return differences


def _number(value: float) -> str:
    return f"{value:.3g}"


def verdict(difference: Difference) -> str:
    """One quotable sentence, built from the interval alone."""
    interval = difference.interval
    name, other = display_name(difference.combination), display_name(difference.baseline)
    metric = short_label(difference.metric)
    where = f"at budget {format_budget(difference.budget)}x"
    if interval.low is None or interval.high is None:
        return (
            f"{name} vs {other} on {metric} {where}: not resolved, {interval.n} paired seed gives no interval "
            f"(difference {_number(interval.mean)})."
        )
    bounds = f"[{_number(interval.low)}, {_number(interval.high)}]"
    seeds = f"{interval.n} paired seeds, {CONFIDENCE:.0%} t interval"
    if not interval.excludes_zero():
        return (
            f"{name} vs {other} on {metric} {where}: not resolved at this scale: the interval of the "
            f"difference {bounds} includes 0 ({seeds})."
        )
    lower = lower_is_better(difference.metric)
    if lower is None:
        verb = "is higher than" if interval.low > 0 else "is lower than"
    else:
        improved = interval.high < 0 if lower else interval.low > 0
        verb = "beats" if improved else "is worse than"
    size, size_bounds = abs(interval.mean), sorted((abs(interval.low), abs(interval.high)))
    return (
        f"{name} {verb} {other} by {_number(size)} [{_number(size_bounds[0])}, {_number(size_bounds[1])}] "
        f"{metric} {where} ({seeds})."
    )
