"""``results.md``: a row per (combination, budget), every metric as mean [95 % t interval] over seeds,
then the paired differences against AE-only and the verdict sentences built from them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.grid_layout import format_budget
from vtp_lightning.report.aggregate import Group, Stat
from vtp_lightning.report.figures import FigureInfo
from vtp_lightning.report.intervals import CONFIDENCE, Difference, display_name, verdict
from vtp_lightning.report.metric_names import FLOPS, axis_label, lower_is_better, metric_label, metric_order

MISSING = "–"


def format_number(value: float) -> str:
    return f"{value:.4g}"


def format_stat(stat: Stat | None) -> str:
    """``mean [low, high]`` (95 % t interval over seeds), or just the mean for a single seed."""
    if stat is None:
        return MISSING
    if stat.low is None or stat.high is None:
        return format_number(stat.mean)
    return f"{format_number(stat.mean)} [{format_number(stat.low)}, {format_number(stat.high)}]"


def differences_table(differences: Sequence[Difference]) -> str:
    """Paired differences (combination - AE-only, seed by seed) with their intervals."""
    header = ["metric", "budget", "combination", "paired seeds", f"difference [{CONFIDENCE:.0%} t interval]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d in differences:
        interval = d.interval
        bounds = (
            f" [{format_number(interval.low)}, {format_number(interval.high)}]"
            if interval.low is not None and interval.high is not None
            else ""
        )
        cells = [
            metric_label(d.metric),
            f"{format_budget(d.budget)}x",
            f"{display_name(d.combination)} − {display_name(d.baseline)}",
            str(len(d.seeds)),
            f"{format_number(interval.mean)}{bounds}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    path: Path,
    title: str,
    groups: Sequence[Group],
    figures: Sequence[FigureInfo],
    notes: Sequence[str],
    differences: Sequence[Difference] = (),
) -> None:
    metrics = metric_order(m for g in groups for m in g.metrics)
    seeds = sorted({s for g in groups for s in g.seeds})
    parts = [
        f"# {title}",
        "",
        f"{sum(len(g.seeds) for g in groups)} finished cells in {len(groups)} (combination, budget) groups; "
        f"seeds {', '.join(map(str, seeds))}. Values are the last evaluation of each run: the mean over "
        f"seeds and its {CONFIDENCE:.0%} Student-t interval in brackets (none with one seed). "
        f"{metric_label(FLOPS)} is the final total.",
        "",
        results_table(groups),
        "",
        "## Metrics",
        "",
        *(f"- `{m}`: {axis_label(m)}" for m in metrics),
    ]
    if differences:
        parts += [
            "",
            "## Verdicts",
            "",
            "Each sentence compares a combination with AE-only at the same budget, seed by seed (grid seed k "
            "trains both tokenizers and evaluates both with protocol seed k), and is built from the "
            f"{CONFIDENCE:.0%} t interval of the mean paired difference: a winner is named only when the "
            "interval excludes 0.",
            "",
            *(f"- {verdict(d)}" for d in differences),
            "",
            "## Paired differences against AE-only",
            "",
            differences_table(differences),
        ]
    if figures:
        parts += ["", "## Figures", ""]
        parts += [f"![{info.name}]({info.path.name})" for info in figures]
    if notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    path.write_text("\n".join(parts) + "\n")
