"""The paper's figure shape: generation (gFD, gFD∞, class agreement) and reconstruction (rFD) against
measured training FLOPs on a log axis, one line per combination with its 95 % band over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.ticker import LogLocator

from vtp_lightning.report.aggregate import combination_order
from vtp_lightning.report.figures.common import FigureInfo, new_figure, save, style
from vtp_lightning.report.intervals import display_name
from vtp_lightning.report.scaling_curve import ScalingCell, curve

NAME = "scaling_curve"
PANELS = {
    "fd": "gFD (fmnist-net features), lower is better",
    "fd_inf": "gFD∞ (extrapolated to N = ∞), lower is better",
    "class_agreement": "class agreement of samples, higher is better",
    "rfd": "rFD (fmnist-net features), lower is better",
}


def plot_scaling_curve(cells: Sequence[ScalingCell], out_dir: Path) -> FigureInfo:
    figure, axes = new_figure(panels=len(PANELS), width=4.6, height=4.2)
    combinations = combination_order({c.combination for c in cells})
    for ax, (name, label) in zip(axes, PANELS.items()):
        for combination in combinations:
            points = curve(cells, combination, name)
            if not points:
                continue
            look = style(combination)
            xs = [p.flops.mean for p in points]
            ax.plot(xs, [p.value.mean for p in points], label=display_name(combination), **look)
            banded = [p for p in points if p.value.low is not None]
            if len(banded) >= 2:
                ax.fill_between(
                    [p.flops.mean for p in banded],
                    [p.value.low for p in banded],  # type: ignore[misc]
                    [p.value.high for p in banded],  # type: ignore[misc]
                    color=look["color"],
                    alpha=0.2,
                )
            for p in points:
                ax.annotate(f"{p.budget:g}x", (p.flops.mean, p.value.mean), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # 2, 3, 4 ... x 10^k labels would overlap
        ax.set_xlabel("training FLOPs (measured), log scale")
        ax.set_ylabel(label)
        ax.set_title(label.split(",")[0], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(
        "Scaling curve: mean over tokenizer seeds (each cell: mean of its protocol draws), 95 % t bands"
    )
    return save(NAME, figure, axes, out_dir)
