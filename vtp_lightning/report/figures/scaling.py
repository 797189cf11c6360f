"""Figure 1: generation quality against training compute, one line per loss combination.

The paper's central plot: reconstruction-only tokenizers flatten (or get worse) as compute grows,
while those that also learn to understand keep improving.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.report.aggregate import Group, combination_order
from vtp_lightning.report.figures.common import FigureInfo, new_figure, save, style
from vtp_lightning.report.metric_names import FLOPS, axis_label, metric_label

NAME = "generation_vs_flops"


def plot_generation_vs_flops(
    groups: Sequence[Group], generation: str | None, out_dir: Path, notes: list[str]
) -> FigureInfo | None:
    if generation is None:
        notes.append(f"{NAME}: skipped, no generation metric (eval/gfid or eval/gfd_*) in any cell")
        return None
    points = [(g, g.metrics[generation], g.flops_for(generation)) for g in groups if generation in g.metrics]
    points = [(group, value, flops) for group, value, flops in points if flops is not None]
    if not points:
        notes.append(f"{NAME}: skipped, no {FLOPS} logged (is the ComputeAccounting callback on?)")
        return None

    figure, (ax,) = new_figure()
    for combination in combination_order(group.combination for group, _, _ in points):
        line = sorted((p for p in points if p[0].combination == combination), key=lambda p: p[2].mean)
        ax.errorbar(
            [flops.mean for _, _, flops in line],
            [value.mean for _, value, _ in line],
            xerr=[flops.error for _, _, flops in line],
            yerr=[value.error for _, value, _ in line],
            label=combination,
            capsize=3,
            **style(combination),
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"{metric_label(FLOPS)}, log scale")
    ax.set_ylabel(axis_label(generation))
    ax.set_title(
        f"{metric_label(generation)} vs tokenizer training compute\n(error bars: 95 % t interval over seeds)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="objectives", fontsize="small")
    return save(NAME, figure, [ax], out_dir, metric=generation)
