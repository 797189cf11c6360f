"""What every figure shares: Agg rendering without pyplot, colours per combination, metric choice."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import scipy.stats
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vtp_lightning.grid import COMBINATIONS
from vtp_lightning.report.aggregate import Group
from vtp_lightning.report.metric_names import metric_label

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass
class FigureInfo:
    """A written figure and what its axes say, so callers and tests need not read pixels."""

    name: str
    path: Path
    title: str
    axes: list[dict[str, str]]  # one {"xlabel", "ylabel", "title"} per panel
    figure: Figure
    extra: dict[str, Any] = field(default_factory=dict)


def new_figure(panels: int = 1, width: float = 6.4, height: float = 4.6) -> tuple[Figure, list[Axes]]:
    """A pyplot-free figure on the Agg canvas: no global state, safe on headless machines."""
    figure = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, panels, index + 1) for index in range(panels)]
    return figure, axes


def save(name: str, figure: Figure, axes: Sequence[Axes], out_dir: Path, **extra: Any) -> FigureInfo:
    path = Path(out_dir) / f"{name}.png"
    figure.savefig(path, dpi=120)
    labels = [{"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(), "title": ax.get_title()} for ax in axes]
    title = figure.get_suptitle() if hasattr(figure, "get_suptitle") else ""
    return FigureInfo(name, path, title, labels, figure, dict(extra))


def style(combination: str) -> dict[str, str]:
    """A fixed colour and marker per combination, the same in every figure."""
    known = combination in COMBINATIONS
    index = COMBINATIONS.index(combination) if known else zlib.crc32(combination.encode())
    return {"color": _PALETTE[index % len(_PALETTE)], "marker": _MARKERS[index % len(_MARKERS)]}


def pick_metric(groups: Sequence[Group], pattern: re.Pattern[str], notes: list[str]) -> str | None:
    """The metric of a kind (e.g. gFID or gFD) reported by the most groups; notes when several exist."""
    counts: dict[str, int] = {}
    for group in groups:
        for name in group.metrics:
            if pattern.match(name):
                counts[name] = counts.get(name, 0) + 1
    if not counts:
        return None
    chosen = max(sorted(counts), key=lambda name: counts[name])
    if len(counts) > 1:
        others = ", ".join(metric_label(name) for name in sorted(counts) if name != chosen)
        notes.append(f"several metrics of one kind: using {metric_label(chosen)}; not plotted: {others}")
    return chosen


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Rank correlation (average ranks for ties); None with fewer than 3 points or no spread."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(scipy.stats.spearmanr(xs, ys).statistic)
