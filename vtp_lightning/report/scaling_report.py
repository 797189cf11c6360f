"""``vtp-report GRID_DIR --scaling-curve --out DIR``: the scaling curve's figure, table and verdicts.

Writes ``scaling_curve.png``, ``scaling_curve.md`` (every cell with its seeds and protocol draws,
every interval, the verdict sentences, the design's resolution, the run's wall time) and
``scaling_curve.json``. Reads finished cells only; trains nothing.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from vtp_lightning.report.figures.scaling_curve import NAME, PANELS, plot_scaling_curve
from vtp_lightning.report.intervals import display_name
from vtp_lightning.report.scaling_curve import (
    BASELINE,
    FIELDS,
    UNDERSTANDING,
    Change,
    ScalingCell,
    budget_changes,
    combination_gaps,
    curve,
    read_scaling_cells,
    resolution,
    slope_comparison,
)
from vtp_lightning.report.scaling_verdicts import (
    flops_text,
    interval_text,
    level_text,
    resolution_sentence,
    saturation_verdict,
    slope_verdict,
)

RUN_RECORD = "scaling_run.jsonl"


@dataclass
class ScalingReport:
    markdown: Path
    figure: Path
    summary: Path
    verdicts: list[str]
    redraw: str


def redraw_command(grid_dir: Path, out_dir: Path, archive_dir: Path) -> str:
    """Restore the archived cells, then draw: no training."""
    grid_dir = Path(grid_dir)
    restore = [
        "python", "scripts/grid_results.py", "restore", grid_dir.name,
        "--runs-dir", str(grid_dir.parent), "--archive-dir", str(archive_dir),
    ]  # fmt: skip
    draw = ["vtp-report", str(grid_dir), "--scaling-curve", "--out", str(out_dir)]
    return f"{shlex.join(restore)} && {shlex.join(draw)}"


def _run_wall_time(grid_dir: Path) -> str:
    path = grid_dir / RUN_RECORD
    if not path.is_file():
        return "No run record (scaling_run.jsonl): these cells were restored or trained outside `make scaling-curve`."
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    total = sum(r["wall_time_s"] for r in runs)
    parts = "; ".join(
        f"{r['started_at']} → {r['finished_at']}: {r['wall_time_s'] / 3600:.2f} h (estimate {r['estimate_s'] / 3600:.2f} h)"
        for r in runs
    )
    checks = [line for r in runs for line in r.get("reuse_check", [])]
    reuse = (
        " Reused archived cells, checked: " + "; ".join(checks) + "."
        if checks
        else " No reuse check was recorded (nothing archived was reused, or it was skipped)."
    )
    return f"Wall time of the runs: {total / 3600:.2f} h in {len(runs)} invocation(s) ({parts}).{reuse}"


def _change_rows(changes: Sequence[Change], flops: bool) -> list[str]:
    rows = []
    for c in changes:
        where = f"{flops_text(c.before)} → {flops_text(c.after)}" if flops else ""
        diffs = ", ".join(f"{d:+.3g}" for d in c.differences)
        rows.append(
            f"| {c.label} | {where} | {', '.join(map(str, c.seeds))} | {diffs} | {interval_text(c.interval)} |"
        )
    return rows


def _cell_rows(cells: Sequence[ScalingCell]) -> list[str]:
    rows = []
    for c in sorted(cells, key=lambda c: (c.combination, c.budget, c.seed)):
        draws = "; ".join(f"seed {s}: {d.get('fd', float('nan')):.3f}" for s, d in sorted(c.draws.items()))
        mean = c.value("fd")
        flops = flops_text(c.flops) if c.flops is not None else "–"
        rfd = f"{c.rfd:.3f}" if c.rfd is not None else "–"
        rows.append(
            f"| {display_name(c.combination)} | {c.budget:g}x | {c.seed} | {flops} | {draws} | "
            f"{mean:.3f} | {rfd} |"
            if mean is not None
            else f"| {display_name(c.combination)} | {c.budget:g}x | {c.seed} | {flops} | – | – | {rfd} |"
        )
    return rows


def build_scaling_report(
    grid_dir: Path,
    out_dir: Path,
    combinations: Sequence[str] = (BASELINE, UNDERSTANDING),
    archive_dir: Path = Path("docs/results/grids/scaling"),
) -> ScalingReport:
    grid_dir, out_dir = Path(grid_dir), Path(out_dir)
    cells = read_scaling_cells(grid_dir, combinations)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_scaling_curve(cells, out_dir)
    steps = {c: budget_changes(cells, c, "fd") for c in combinations}
    gaps = combination_gaps(cells, "fd", BASELINE, UNDERSTANDING)
    slopes = slope_comparison(cells, "fd", BASELINE, UNDERSTANDING)
    found = resolution(cells, [s for c in combinations for s in steps[c]] + gaps, "fd")
    verdicts = [saturation_verdict(c, steps[c]) for c in combinations]
    verdicts.append(slope_verdict(slopes, BASELINE, UNDERSTANDING))
    redraw = redraw_command(grid_dir, out_dir, archive_dir)

    lines = [
        "# Scaling curve: generation against tokenizer training compute",
        "",
        "Each cell is one tokenizer (combination, budget, tokenizer seed k). Its gFD is the mean of its protocol "
        "draws: the training run's (protocol seed k) and `protocol_eval`'s (protocol seed k + 100) where the cell "
        "has a checkpoint. Every comparison is paired: same tokenizer seed, and on both sides the mean over the "
        "protocol seeds both drew; intervals are 95 % Student-t over tokenizer seeds (n − 1 df).",
        "",
        f"![{NAME}]({figure.path.name})",
        "",
        "## Verdicts",
        "",
        *[f"- {v}" for v in verdicts],
        f"- {resolution_sentence(found)}",
        "",
        _run_wall_time(grid_dir),
        "",
        "## Curve (mean over tokenizer seeds [95 % t interval])",
        "",
        "| combination | budget | FLOPs | seeds | draws per cell | "
        + " | ".join(PANELS[f].split(",")[0] for f in (*FIELDS, "rfd"))
        + " |",
        "|" + "---|" * (5 + len(FIELDS) + 1),
    ]
    for combination in combinations:
        by_field = {f: {p.budget: p for p in curve(cells, combination, f)} for f in (*FIELDS, "rfd")}
        for budget, point in by_field["fd"].items():
            values = [level_text(by_field[f][budget].value) if budget in by_field[f] else "–"
                      for f in (*FIELDS, "rfd")]  # fmt: skip
            lines.append(
                f"| {display_name(combination)} | {budget:g}x | {flops_text(point.flops.mean)} | "
                f"{', '.join(map(str, point.seeds))} | {', '.join(map(str, point.draws))} | "
                + " | ".join(values)
                + " |"
            )
    header = "| comparison | FLOPs | seeds | paired differences | mean [95 % t] |\n|---|---|---|---|---|"
    lines += ["", "## gFD change between consecutive budgets (paired by seed)", "", header]
    lines += [row for c in combinations for row in _change_rows(steps[c], flops=True)]
    lines += [
        "",
        f"## gFD: {display_name(UNDERSTANDING)} − {display_name(BASELINE)} per budget (paired)",
        "",
        header,
    ]
    lines += _change_rows(gaps, flops=False)
    lines += [
        "",
        "## Every cell",
        "",
        "| combination | budget | seed | FLOPs | gFD per protocol draw | gFD mean | rFD |",
        "|---|---|---|---|---|---|---|",
        *_cell_rows(cells),
        "",
        "Redraw everything from the archived cells, without training:",
        "",
        f"    {redraw}",
        "",
    ]
    markdown = out_dir / f"{NAME}.md"
    markdown.write_text("\n".join(lines))
    summary = out_dir / f"{NAME}.json"
    summary.write_text(
        json.dumps(
            {
                "grid_dir": str(grid_dir),
                "verdicts": verdicts,
                "resolution": asdict(found),
                "slopes": asdict(slopes) if slopes else None,
                "budget_changes": {c: [asdict(s) for s in steps[c]] for c in combinations},
                "gaps": [asdict(g) for g in gaps],
                "cells": [
                    {
                        "cell": f"{c.combination}/{c.budget:g}x/seed{c.seed}",
                        "flops": c.flops,
                        "rfd": c.rfd,
                        "draws": {str(s): d for s, d in sorted(c.draws.items())},
                    }
                    for c in cells
                ],  # fmt: skip
                "redraw": redraw,
            },
            indent=2,
        )
        + "\n"
    )
    return ScalingReport(markdown, figure.path, summary, verdicts, redraw)
