"""Where a grid's cells live and what their files mean: written once for the runner, the report,
the noise and DiT-budget studies and ``scripts/grid_results.py``.

A cell is one training run, in ``<runs-dir>/<grid>/<combination>/<budget>x/seed<k>/``.
``<budget>`` is written the shortest way (``1``, ``3``, ``0.5``: :func:`format_budget`). A cell
holds ``DONE`` once it finished, ``.lock`` while a process trains it (``flock``),
``checkpoints/last.ckpt`` to resume from, ``attempts.jsonl`` (one line per attempt) and the
run's ``metrics.csv``. The names the metrics are logged under come from
:mod:`vtp_lightning.metric_names`. No heavy imports: ``make`` and the report read this.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from vtp_lightning.errors import ConfigError

DONE = "DONE"
LOCK = ".lock"
ATTEMPTS = "attempts.jsonl"
METRICS = "metrics.csv"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"

BUDGET_FOLDER = re.compile(r"^(?P<budget>\d+(?:\.\d+)?(?:e[+-]?\d+)?)x$")
SEED_FOLDER = re.compile(r"^seed(?P<seed>\d+)$")


def format_budget(budget: float) -> str:
    """The shortest spelling of a budget (3.0 -> '3', 0.5 -> '0.5'); folder names use it."""
    return f"{budget:g}"


def parse_budget(text: str) -> float:
    """A positive budget written the shortest way, so ``make`` targets and folders agree."""
    try:
        budget = float(text)
    except ValueError:
        raise ConfigError(f"budget {text!r} is not a number (write e.g. 1, 3, 10 or 0.5)") from None
    if not math.isfinite(budget) or budget <= 0:
        raise ConfigError(f"budget must be a positive number, got {text!r}")
    if format_budget(budget) != text:
        raise ConfigError(f"write budget {text!r} as {format_budget(budget)!r} (folder names use that form)")
    return budget


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    grid: str
    combination: str
    budget: float
    seed: int

    @property
    def name(self) -> str:
        """``<combination>/<budget>x/seed<k>``: the cell's folder under its grid."""
        return f"{self.combination}/{format_budget(self.budget)}x/seed{self.seed}"

    def directory(self, runs_dir: Path) -> Path:
        return Path(runs_dir) / self.grid / self.name


def grid_cells(
    grid: str, combinations: Sequence[str], budgets: Sequence[float], seeds: Sequence[int]
) -> list[Cell]:
    """Every cell, combination-major (the order ``make grid`` lists them in)."""
    return [Cell(grid, c, b, s) for c in combinations for b in budgets for s in seeds]


def cell_at(directory: str | PurePath) -> Cell | None:
    """The cell whose folder ``directory`` is (``.../<grid>/<combination>/<budget>x/seed<k>``), else
    ``None``. The grid is the folder above the combination (``""`` when the path does not show it)."""
    parts = PurePath(str(directory).replace("\\", "/")).parts
    if len(parts) < 3:
        return None
    budget, seed = BUDGET_FOLDER.match(parts[-2]), SEED_FOLDER.match(parts[-1])
    if not (budget and seed):
        return None
    return Cell(parts[-4] if len(parts) >= 4 else "", parts[-3], float(budget["budget"]), int(seed["seed"]))


def cell_in_path(path: str | PurePath) -> Cell | None:
    """The cell a path is or lies in (the last cell folder along it), e.g.
    ``runs/g/ae/4x/seed2/checkpoints/last.ckpt`` -> ``Cell("g", "ae", 4.0, 2)``; ``None`` if none."""
    parts = PurePath(str(path).replace("\\", "/")).parts
    for end in range(len(parts), 2, -1):
        cell = cell_at(PurePath(*parts[:end]))
        if cell is not None:
            return cell
    return None


def cell_directories(grid_dir: Path) -> list[Path]:
    """The folders shaped ``<combination>/<budget>x/seed<k>`` directly under ``grid_dir``, sorted."""
    return [
        path
        for path in sorted(Path(grid_dir).glob("*/*/seed*"))
        if path.is_dir() and BUDGET_FOLDER.match(path.parent.name) and SEED_FOLDER.match(path.name)
    ]


def is_done(directory: Path) -> bool:
    """Whether the cell in ``directory`` finished (its ``DONE`` file exists)."""
    return (Path(directory) / DONE).is_file()


def finished_cells(grid_dir: Path) -> list[Path]:
    """The finished cells' folders under ``grid_dir``, sorted."""
    return [directory for directory in cell_directories(grid_dir) if is_done(directory)]


def is_locked(directory: Path) -> bool:
    """Whether a process holds the cell's ``flock`` (the kernel drops it when the holder dies)."""
    path = Path(directory) / LOCK
    if not path.is_file():
        return False
    with path.open("a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file, fcntl.LOCK_UN)
        return False


def read_attempts(directory: Path) -> list[dict[str, Any]]:
    """The cell's attempt records, oldest first (empty before the first attempt)."""
    path = Path(directory) / ATTEMPTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cell_status(directory: Path) -> str:
    """done, running, interrupted (has last.ckpt), failed (last attempt exited non-zero) or pending."""
    if is_done(directory):
        return "done"
    if is_locked(directory):
        return "running"
    if (Path(directory) / LAST_CHECKPOINT).is_file():
        return "interrupted"
    attempts = read_attempts(directory)
    if attempts and attempts[-1]["exit_code"] != 0:
        return "failed"
    return "pending"
