"""Seeds of the same (combination, budget) collapse into one :class:`Group`: mean and 95 % t interval."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vtp_lightning.grid import COMBINATIONS
from vtp_lightning.grid_layout import format_budget
from vtp_lightning.report.intervals import t_interval
from vtp_lightning.report.metric_names import FLOPS
from vtp_lightning.report.runs import CellResult


@dataclass(frozen=True)
class Stat:
    """Mean over seeds with its 95 % t interval ``[low, high]``; ``std`` is the sample standard
    deviation. ``std``, ``low`` and ``high`` are None with a single seed."""

    mean: float
    std: float | None
    n: int
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        std = statistics.stdev(values) if len(values) > 1 else None
        interval = t_interval(values)
        return cls(interval.mean, std, len(values), interval.low, interval.high)

    @property
    def error(self) -> float:
        """For error bars: the half-width of the 95 % interval, zero when there is none."""
        return 0.0 if self.low is None or self.high is None else (self.high - self.low) / 2


@dataclass
class Group:
    combination: str
    budget: float
    seeds: list[int]
    metrics: dict[str, Stat]  # eval metric -> value over seeds
    flops_at: dict[str, Stat]  # eval metric -> training FLOPs at the row it was measured
    final: dict[str, Stat]  # compute metric -> final cumulative value

    @property
    def budget_label(self) -> str:
        return f"{format_budget(self.budget)}x"

    def flops_for(self, metric: str) -> Stat | None:
        """The compute behind a metric: at its row, else the run's final total."""
        return self.flops_at.get(metric) or self.final.get(FLOPS)


def combination_order(names: Iterable[str]) -> list[str]:
    """The grid's own order, unknown combinations alphabetically after it."""
    names = set(names)
    known = [c for c in COMBINATIONS if c in names]
    return known + sorted(names - set(known))


def aggregate(cells: Iterable[CellResult]) -> list[Group]:
    """One group per (combination, budget), ordered by combination then budget."""
    by_key: dict[tuple[str, float], list[CellResult]] = {}
    for cell in cells:
        by_key.setdefault((cell.combination, cell.budget), []).append(cell)
    order = combination_order(c for c, _ in by_key)
    groups = []
    for combination, budget in sorted(by_key, key=lambda key: (order.index(key[0]), key[1])):
        members = sorted(by_key[(combination, budget)], key=lambda cell: cell.seed)
        groups.append(
            Group(
                combination=combination,
                budget=budget,
                seeds=[cell.seed for cell in members],
                metrics=_stats(members, lambda cell, key: _eval_value(cell, key)),
                flops_at=_stats(members, lambda cell, key: _eval_flops(cell, key)),
                final=_stats(members, lambda cell, key: cell.final_compute.get(key), compute=True),
            )
        )
    return groups


def _eval_value(cell: CellResult, key: str) -> float | None:
    point = cell.evals.get(key)
    return point.value if point else None


def _eval_flops(cell: CellResult, key: str) -> float | None:
    point = cell.evals.get(key)
    return point.compute.get(FLOPS) if point else None


def _stats(members: list[CellResult], value_of, compute: bool = False) -> dict[str, Stat]:
    keys = {k for cell in members for k in (cell.final_compute if compute else cell.evals)}
    stats = {}
    for key in sorted(keys):
        values = [v for cell in members if (v := value_of(cell, key)) is not None]
        if values:
            stats[key] = Stat.of(values)
    return stats
