"""Figure 4: every evaluation metric at the largest budget, a bar per combination.

The equal-compute comparison: at the most compute the grid spent, which objectives win on each axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.grid_layout import format_budget
from vtp_lightning.report.aggregate import Group
from vtp_lightning.report.figures.common import FigureInfo, new_figure, save, style
from vtp_lightning.report.metric_names import axis_label, metric_label, metric_order


def plot_bars_at_largest_budget(
    groups: Sequence[Group], out_dir: Path, notes: list[str]
) -> FigureInfo | None:
    if not groups:
        return None
    budget = max(g.budget for g in groups)
    name = f"bars_at_{format_budget(budget)}x"
    at_budget = [g for g in groups if g.budget == budget]
    absent = sorted({g.combination for g in groups} - {g.combination for g in at_budget})
    if absent:
        notes.append(f"{name}: no {format_budget(budget)}x cells for {', '.join(absent)}")
    metrics = metric_order(m for g in at_budget for m in g.metrics)
    if not metrics:
        notes.append(f"{name}: skipped, no evaluation metric at {format_budget(budget)}x")
        return None

    figure, axes = new_figure(panels=len(metrics), width=max(3.2, 0.55 * len(at_budget) + 1.5), height=4.2)
    for ax, metric in zip(axes, metrics):
        bars = [g for g in at_budget if metric in g.metrics]
        ax.bar(
            range(len(bars)),
            [g.metrics[metric].mean for g in bars],
            yerr=[g.metrics[metric].error for g in bars],
            color=[style(g.combination)["color"] for g in bars],
            capsize=3,
        )
        ax.set_xticks(range(len(bars)), [g.combination for g in bars], rotation=45, ha="right", fontsize=8)
        ax.set_xlabel("objectives")
        ax.set_ylabel(axis_label(metric))
        ax.set_title(metric_label(metric), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    figure.suptitle(
        f"All metrics at the largest budget ({format_budget(budget)}x), 95 % t intervals over seeds"
    )
    return save(name, figure, axes, out_dir, budget=budget, metrics=metrics)
