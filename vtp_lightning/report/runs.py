"""Reading a grid's runs tree: one :class:`CellResult` per ``<combination>/<budget>x/seed<k>/`` folder.

Lightning's CSV logger writes sparse rows: training steps carry ``train/*`` and ``compute/*``,
evaluations carry ``eval/*`` in rows of their own. So the compute behind an evaluation is the
latest ``compute/*`` value logged at or before the evaluation's step (the compute callback writes
an exact row just before each validation and at the end of training).

Interrupted attempts' ``metrics.csv`` files, moved to ``attempts/<n>/`` by the grid runner before
it resumed, are read first, so nothing logged before an interruption is lost.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from vtp_lightning.errors import DataError
from vtp_lightning.grid_layout import METRICS, cell_at, cell_directories
from vtp_lightning.report.metric_names import COMPUTE_PREFIX, EVAL_PREFIX


@dataclass(frozen=True)
class EvalPoint:
    """The last value of one evaluation metric and the compute spent when it was measured."""

    value: float
    step: int
    compute: dict[str, float] = field(default_factory=dict)


@dataclass
class CellResult:
    combination: str
    budget: float
    seed: int
    directory: Path
    evals: dict[str, EvalPoint]
    final_compute: dict[str, float]


def metrics_files(directory: Path) -> list[Path]:
    """Earlier attempts' metrics (in attempt order), then the current run's."""
    earlier = [p for p in (directory / "attempts").glob(f"*/{METRICS}") if p.parent.name.isdigit()]
    files = sorted(earlier, key=lambda p: int(p.parent.name))
    if (directory / METRICS).is_file():
        files.append(directory / METRICS)
    return files


def _number(text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_cell_metrics(files: list[Path]) -> tuple[dict[str, EvalPoint], dict[str, float]]:
    """(last value of each ``eval/*`` metric with its compute, final value of each ``compute/*``)."""
    last_eval: dict[str, tuple[float, int]] = {}
    compute: dict[str, list[tuple[int, int, float]]] = {}  # key -> [(step, order, value)]
    order = 0
    for path in files:
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                order += 1
                step_value = _number(row.get("step"))
                step = int(step_value) if step_value is not None else order
                for key, text in row.items():
                    value = _number(text) if isinstance(key, str) else None
                    if value is None:
                        continue
                    if key.startswith(EVAL_PREFIX):
                        last_eval[key] = (value, step)
                    elif key.startswith(COMPUTE_PREFIX):
                        compute.setdefault(key, []).append((step, order, value))

    def compute_at(step: int) -> dict[str, float]:
        found = {}
        for key, entries in compute.items():
            candidates = [entry for entry in entries if entry[0] <= step]
            if candidates:
                found[key] = max(candidates)[2]
        return found

    evals = {key: EvalPoint(value, step, compute_at(step)) for key, (value, step) in last_eval.items()}
    final = {key: max(entries)[2] for key, entries in compute.items()}
    return evals, final


def read_cell(directory: Path) -> CellResult:
    files = metrics_files(directory)
    if not files:
        raise DataError(f"{directory} has no metrics.csv")
    evals, final = read_cell_metrics(files)
    cell = cell_at(directory)
    if cell is None:
        raise DataError(f"{directory} is not a grid cell folder (<combination>/<budget>x/seed<k>)")
    return CellResult(
        combination=cell.combination,
        budget=cell.budget,
        seed=cell.seed,
        directory=directory,
        evals=evals,
        final_compute=final,
    )


def no_cells_message(runs_dir: Path) -> str:
    """Why nothing was found, with the likely fix."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return f"{runs_dir} does not exist"
    grids = sorted(p for p in runs_dir.iterdir() if p.is_dir() and cell_directories(p))
    hint = f"; it looks like a folder of grids, pass one of: {', '.join(map(str, grids))}" if grids else ""
    return (
        f"no cells under {runs_dir} (expected {runs_dir}/<combination>/<budget>x/seed<k>/metrics.csv){hint}"
    )
