"""Runs tree in, figures and tables out: the whole report in one call."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vtp_lightning.errors import DataError
from vtp_lightning.grid_layout import cell_directories, is_done
from vtp_lightning.report.aggregate import Group, aggregate
from vtp_lightning.report.figures import (
    FigureInfo,
    plot_bars_at_largest_budget,
    plot_generation_vs_flops,
    plot_paired_differences,
    plot_reconstruction_vs_generation,
    plot_understanding_vs_generation,
)
from vtp_lightning.report.figures.common import pick_metric
from vtp_lightning.report.intervals import Difference, paired_differences, verdict
from vtp_lightning.report.metric_names import GENERATION_PATTERN, RECONSTRUCTION_PATTERN
from vtp_lightning.report.runs import CellResult, no_cells_message, read_cell
from vtp_lightning.report.table import write_results_markdown


@dataclass
class Report:
    out_dir: Path
    cells: list[CellResult]
    groups: list[Group]
    figures: dict[str, FigureInfo]
    results_path: Path
    summary_path: Path
    notes: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def verdicts(self) -> list[str]:
        return [verdict(d) for d in self.differences]


def compared_metrics(groups: list[Group], generation: str | None) -> list[str]:
    """What the verdicts are about: the generation distance, its 1/N-extrapolated and kernel
    versions, and the class agreement of the samples, as far as the cells logged them."""
    if generation is None:
        candidates = ["eval/gen_class_agreement"]
    else:
        kernel = (
            generation.replace("fid", "kid")
            if generation.endswith("fid")
            else generation.replace("gfd_", "gkd_")
        )
        candidates = [generation, f"{generation}_inf", kernel, "eval/gen_class_agreement"]
    present = {m for g in groups for m in g.metrics}
    return [m for m in candidates if m in present]


def build_report(runs_dir: Path, out_dir: Path | None = None, include_unfinished: bool = False) -> Report:
    """Read every cell under ``runs_dir`` (one grid), write figures, ``results.md`` and ``summary.json``.

    Only cells with a ``DONE`` marker count unless ``include_unfinished``: a half-trained run
    would sit on the plots as if it had had its full budget.
    """
    runs_dir = Path(runs_dir)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir / "report"
    notes: list[str] = []
    directories = cell_directories(runs_dir)
    if not directories:
        raise DataError(no_cells_message(runs_dir))
    unfinished = [d for d in directories if not is_done(d)]
    chosen = directories if include_unfinished else [d for d in directories if is_done(d)]
    if unfinished:
        names = ", ".join(str(d.relative_to(runs_dir)) for d in unfinished)
        verb = "included" if include_unfinished else "left out (pass --include-unfinished to plot them)"
        notes.append(f"{len(unfinished)} unfinished cells {verb}: {names}")
    readable = [d for d in chosen if (d / "metrics.csv").is_file() or (d / "attempts").is_dir()]
    for directory in sorted(set(chosen) - set(readable)):
        notes.append(f"{directory.relative_to(runs_dir)}: no metrics.csv, left out")
    if not readable:
        raise DataError(
            f"no finished cell with a metrics.csv under {runs_dir} ({len(unfinished)} unfinished)"
        )

    cells = [read_cell(d) for d in readable]
    groups = aggregate(cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    generation = pick_metric(groups, GENERATION_PATTERN, notes)
    reconstruction = pick_metric(groups, RECONSTRUCTION_PATTERN, notes)
    differences = [d for m in compared_metrics(groups, generation) for d in paired_differences(cells, m)]
    drawn = [
        plot_generation_vs_flops(groups, generation, out_dir, notes),
        plot_reconstruction_vs_generation(groups, reconstruction, generation, out_dir, notes),
        plot_understanding_vs_generation(groups, generation, out_dir, notes),
        plot_bars_at_largest_budget(groups, out_dir, notes),
        plot_paired_differences(differences, out_dir, notes),
    ]
    figures = {info.name: info for info in drawn if info is not None}

    results_path = out_dir / "results.md"
    title = f"Objective ablation: {runs_dir.resolve().name}"
    write_results_markdown(results_path, title, groups, list(figures.values()), notes, differences)
    summary_path = out_dir / "summary.json"
    summary = {
        "runs_dir": str(runs_dir),
        "groups": [asdict(group) for group in groups],
        "figures": {name: {"path": str(i.path), "axes": i.axes, **i.extra} for name, i in figures.items()},
        "differences": [asdict(d) for d in differences],
        "verdicts": [verdict(d) for d in differences],
        "notes": notes,
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return Report(out_dir, cells, groups, figures, results_path, summary_path, notes, differences)
