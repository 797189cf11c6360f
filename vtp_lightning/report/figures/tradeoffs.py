"""Figures 2 and 3: does a better reconstruction, or a better understanding, mean better generation?

A point per (combination, budget), seeds averaged with error bars; each combination's points are
joined in budget order, so a reconstruction-only AE whose rFID improves while its gFID worsens shows
as a line heading the wrong way. The Spearman rank correlation over all points is in each title and
in the returned metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes

from vtp_lightning.report.aggregate import Group, combination_order
from vtp_lightning.report.figures.common import FigureInfo, new_figure, save, spearman, style
from vtp_lightning.report.metric_names import UNDERSTANDING, axis_label, metric_label

RECONSTRUCTION_NAME = "reconstruction_vs_generation"
UNDERSTANDING_NAME = "understanding_vs_generation"


def plot_reconstruction_vs_generation(
    groups: Sequence[Group],
    reconstruction: str | None,
    generation: str | None,
    out_dir: Path,
    notes: list[str],
) -> FigureInfo | None:
    missing = [
        kind
        for kind, metric in (("reconstruction", reconstruction), ("generation", generation))
        if not metric
    ]
    if missing:
        notes.append(f"{RECONSTRUCTION_NAME}: skipped, no {' or '.join(missing)} metric in any cell")
        return None
    figure, (ax,) = new_figure()
    rho = _against_generation(ax, groups, reconstruction, generation)
    if rho is False:
        notes.append(f"{RECONSTRUCTION_NAME}: skipped, no cell has both metrics")
        return None
    return save(RECONSTRUCTION_NAME, figure, [ax], out_dir, spearman={reconstruction: rho})


def plot_understanding_vs_generation(
    groups: Sequence[Group], generation: str | None, out_dir: Path, notes: list[str]
) -> FigureInfo | None:
    present = [m for m in UNDERSTANDING if any(m in g.metrics for g in groups)]
    if generation is None or not present:
        what = "generation metric" if generation is None else "linear-probe or zero-shot metric"
        notes.append(f"{UNDERSTANDING_NAME}: skipped, no {what} in any cell")
        return None
    figure, axes = new_figure(panels=len(present))
    correlations = {
        metric: _against_generation(ax, groups, metric, generation) for ax, metric in zip(axes, present)
    }
    drawn = {metric: rho for metric, rho in correlations.items() if rho is not False}
    if not drawn:
        notes.append(
            f"{UNDERSTANDING_NAME}: skipped, no cell has both an understanding and a generation metric"
        )
        return None
    return save(UNDERSTANDING_NAME, figure, axes, out_dir, spearman=drawn)


def _against_generation(
    ax: Axes, groups: Sequence[Group], metric: str, generation: str
) -> float | None | bool:
    """Draw ``metric`` (x) against generation (y); the rank correlation, or False if nothing to draw."""
    both = [g for g in groups if metric in g.metrics and generation in g.metrics]
    if not both:
        return False
    for combination in combination_order(g.combination for g in both):
        line = sorted((g for g in both if g.combination == combination), key=lambda g: g.budget)
        xs = [g.metrics[metric] for g in line]
        ys = [g.metrics[generation] for g in line]
        ax.errorbar(
            [x.mean for x in xs],
            [y.mean for y in ys],
            xerr=[x.error for x in xs],
            yerr=[y.error for y in ys],
            label=combination,
            capsize=3,
            alpha=0.9,
            **style(combination),
        )
        for group, x, y in zip(line, xs, ys):
            ax.annotate(
                group.budget_label, (x.mean, y.mean), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    rho = spearman([g.metrics[metric].mean for g in both], [g.metrics[generation].mean for g in both])
    correlation = "n/a (fewer than 3 points)" if rho is None else f"{rho:+.2f}"
    ax.set_xlabel(axis_label(metric))
    ax.set_ylabel(axis_label(generation))
    ax.set_title(
        f"{metric_label(generation)} vs {metric_label(metric)}\nSpearman rank correlation {correlation}"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(title="objectives (points: budgets; bars: 95 % t intervals)", fontsize="small")
    return rho
