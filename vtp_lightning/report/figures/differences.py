"""Figure 5: each combination minus AE-only at the same budget and seed, with 95 % t intervals.

The figure the verdicts are read from: a bar whose interval crosses the zero line is not resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.grid_layout import format_budget
from vtp_lightning.report.aggregate import combination_order
from vtp_lightning.report.figures.common import FigureInfo, new_figure, save, style
from vtp_lightning.report.intervals import CONFIDENCE, Difference, display_name
from vtp_lightning.report.metric_names import lower_is_better, short_label

NAME = "paired_differences"


def plot_paired_differences(
    differences: Sequence[Difference], out_dir: Path, notes: list[str]
) -> FigureInfo | None:
    if not differences:
        notes.append(f"{NAME}: skipped, no combination shares a budget and seeds with an AE-only cell")
        return None
    metrics = list(dict.fromkeys(d.metric for d in differences))
    figure, axes = new_figure(panels=len(metrics), width=5.2, height=4.4)
    for ax, metric in zip(axes, metrics):
        rows = [d for d in differences if d.metric == metric]
        order = combination_order(d.combination for d in rows)
        rows.sort(key=lambda d: (d.budget, order.index(d.combination)))
        ax.bar(
            range(len(rows)),
            [d.interval.mean for d in rows],
            yerr=[d.interval.half_width for d in rows],
            color=[style(d.combination)["color"] for d in rows],
            capsize=3,
        )
        ax.axhline(0.0, color="black", linewidth=0.8)
        labels = [f"{display_name(d.combination)}\n{format_budget(d.budget)}x" for d in rows]
        ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=7)
        direction = {True: "below 0 is better", False: "above 0 is better", None: ""}[lower_is_better(metric)]
        ax.set_ylabel(f"{short_label(metric)} minus AE-only ({direction})")
        ax.set_title(short_label(metric), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    figure.suptitle(f"Paired differences against AE-only, {CONFIDENCE:.0%} t intervals over seeds")
    return save(NAME, figure, axes, out_dir, metrics=metrics)
