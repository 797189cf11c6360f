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
import re
from dataclasses import dataclass, field
from pathlib import Path

from vtp_lightning.errors import DataError
from vtp_lightning.grid import DONE
from vtp_lightning.report.metric_names import COMPUTE_PREFIX, EVAL_PREFIX

_BUDGET_FOLDER = re.compile(r"^(?P<budget>\d+(\.\d+)?(e[+-]?\d+)?)x$")
_SEED_FOLDER = re.compile(r"^seed(?P<seed>\d+)$")


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
    earlier = [p for p in (directory / "attempts").glob("*/metrics.csv") if p.parent.name.isdigit()]
    files = sorted(earlier, key=lambda p: int(p.parent.name))
    if (directory / "metrics.csv").is_file():
        files.append(directory / "metrics.csv")
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


def is_finished(directory: Path) -> bool:
    return (directory / DONE).is_file()


def cell_directories(runs_dir: Path) -> list[Path]:
    """Folders shaped ``<combination>/<budget>x/seed<k>`` directly under ``runs_dir``."""
    found = []
    for seed_dir in sorted(Path(runs_dir).glob("*/*/seed*")):
        if (
            seed_dir.is_dir()
            and _BUDGET_FOLDER.match(seed_dir.parent.name)
            and _SEED_FOLDER.match(seed_dir.name)
        ):
            found.append(seed_dir)
    return found


def read_cell(directory: Path) -> CellResult:
    files = metrics_files(directory)
    if not files:
        raise DataError(f"{directory} has no metrics.csv")
    evals, final = read_cell_metrics(files)
    budget_match = _BUDGET_FOLDER.match(directory.parent.name)
    seed_match = _SEED_FOLDER.match(directory.name)
    assert budget_match and seed_match, directory
    return CellResult(
        combination=directory.parent.parent.name,
        budget=float(budget_match["budget"]),
        seed=int(seed_match["seed"]),
        directory=directory,
        evals=evals,
        final_compute=final,
    )


def no_cells_message(runs_dir: Path) -> str:
    """Why nothing was found, with the likely fix."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return f"{runs_dir} does not exist"
    grids = sorted(
        {p.parent.parent.parent for p in runs_dir.glob("*/*/*/seed*") if _BUDGET_FOLDER.match(p.parent.name)}
    )
    hint = f"; it looks like a folder of grids, pass one of: {', '.join(map(str, grids))}" if grids else ""
    return (
        f"no cells under {runs_dir} (expected {runs_dir}/<combination>/<budget>x/seed<k>/metrics.csv){hint}"
    )
