"""``results.md``: a row per (combination, budget), every metric as mean ± std over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.report.aggregate import Group, Stat
from vtp_lightning.report.figures import FigureInfo
from vtp_lightning.report.metric_names import FLOPS, axis_label, lower_is_better, metric_label, metric_order

MISSING = "–"


def format_number(value: float) -> str:
    return f"{value:.4g}"


def format_stat(stat: Stat | None) -> str:
    """``mean ± std`` over seeds, or just the mean for a single seed."""
    if stat is None:
        return MISSING
    if stat.std is None:
        return format_number(stat.mean)
    return f"{format_number(stat.mean)} ± {stat.std:.2g}"


def column_title(metric: str) -> str:
    """The metric label with an arrow pointing to better."""
    arrow = {True: " ↓", False: " ↑", None: ""}[lower_is_better(metric)]
    return metric_label(metric) + arrow


def results_table(groups: Sequence[Group]) -> str:
    metrics = metric_order(m for g in groups for m in g.metrics)
    header = ["combination", "budget", "seeds", metric_label(FLOPS), *(column_title(m) for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        cells = [
            group.combination,
            group.budget_label,
            str(len(group.seeds)),
            format_stat(group.final.get(FLOPS)),
            *(format_stat(group.metrics.get(m)) for m in metrics),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results_markdown(
    path: Path, title: str, groups: Sequence[Group], figures: Sequence[FigureInfo], notes: Sequence[str]
) -> None:
    metrics = metric_order(m for g in groups for m in g.metrics)
    seeds = sorted({s for g in groups for s in g.seeds})
    parts = [
        f"# {title}",
        "",
        f"{sum(len(g.seeds) for g in groups)} finished cells in {len(groups)} (combination, budget) groups; "
        f"seeds {', '.join(map(str, seeds))}. Values are the last evaluation of each run, mean ± sample "
        f"standard deviation over seeds (no ± with one seed). {metric_label(FLOPS)} is the final total.",
        "",
        results_table(groups),
        "",
        "## Metrics",
        "",
        *(f"- `{m}`: {axis_label(m)}" for m in metrics),
    ]
    if figures:
        parts += ["", "## Figures", ""]
        parts += [f"![{info.name}]({info.path.name})" for info in figures]
    if notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    path.write_text("\n".join(parts) + "\n")
