"""The comparison figures, one module per question; each returns a FigureInfo or None with a note."""

from vtp_lightning.report.figures.bars import plot_bars_at_largest_budget
from vtp_lightning.report.figures.common import FigureInfo
from vtp_lightning.report.figures.differences import plot_paired_differences
from vtp_lightning.report.figures.scaling import plot_generation_vs_flops
from vtp_lightning.report.figures.tradeoffs import (
    plot_reconstruction_vs_generation,
    plot_understanding_vs_generation,
)

__all__ = [
    "FigureInfo",
    "plot_bars_at_largest_budget",
    "plot_generation_vs_flops",
    "plot_paired_differences",
    "plot_reconstruction_vs_generation",
    "plot_understanding_vs_generation",
]
