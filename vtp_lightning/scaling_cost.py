"""What a grid cell costs on this machine, read from finished cells' records, to estimate new cells.

A cell's wall time splits into parts that scale differently with its step count, and every
finished cell records them: ``DONE`` (the attempt's wall time and steps), ``summary.json`` (the
training run's wall time, its evaluation time per callback) and ``config.yaml`` (each evaluation
callback's ``every_n_steps``; ``null`` = once, at the end of fit). So::

    cell = start-up + steps x train_per_step + sum over callbacks of rounds(steps) x per_round

with start-up = DONE wall - run wall, train_per_step = (run wall - evaluation) / steps. Each part
is the *least* any finished cell of the combination took: the 2-core machine is shared, so the
fastest measurement is the closest to a quiet one. A second gFD protocol draw
(``protocol_eval`` on the saved tokenizer) costs a start-up plus one GenerationEvaluation round.
No heavy imports: ``make`` runs the estimate before anything trains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vtp_lightning.errors import DataError
from vtp_lightning.grid_layout import DONE, cell_at, read_attempts

SUMMARY = "summary.json"
RESOLVED_CONFIG = "config.yaml"
GENERATION_CALLBACK = "GenerationEvaluation"


def evaluation_rounds(steps: int, every_n_steps: int | None) -> int:
    """How often an evaluation callback runs in a ``steps``-step fit: every ``every_n_steps`` steps,
    plus once at the end when the last step is not one of those (``None``: only at the end)."""
    if every_n_steps is None:
        return 1
    return steps // every_n_steps + (1 if steps % every_n_steps else 0)


@dataclass(frozen=True)
class MeasuredCell:
    """The parts of one finished cell's wall time."""

    combination: str
    steps: int
    startup_s: float
    train_s_per_step: float
    per_round_s: dict[str, float]  # callback class name -> seconds per evaluation round
    every_n_steps: dict[str, int | None]


def _callback_schedule(config_path: Path) -> dict[str, int | None]:
    """callback class name (last dotted part) -> its every_n_steps, from the run's resolved config."""
    if not config_path.is_file():
        return {}
    config = yaml.safe_load(config_path.read_text()) or {}
    schedule: dict[str, int | None] = {}
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        if isinstance(callback, Mapping) and "class_path" in callback:
            options = callback.get("init_args") or {}
            schedule[str(callback["class_path"]).rsplit(".", 1)[-1]] = options.get("every_n_steps")
    return schedule


def measure_cell(directory: Path) -> MeasuredCell | None:
    """The cost parts of a finished, single-attempt cell; ``None`` when its records do not tell
    (unfinished, resumed, or written before summary.json recorded evaluation times)."""
    directory = Path(directory)
    cell = cell_at(directory)
    done_path, summary_path = directory / DONE, directory / SUMMARY
    if cell is None or not done_path.is_file() or not summary_path.is_file():
        return None
    done, summary = json.loads(done_path.read_text()), json.loads(summary_path.read_text())
    if done.get("attempts", 1) != 1 or len(read_attempts(directory)) > 1:
        return None  # a resumed cell's wall time covers only its last attempt
    by_callback = summary.get("evaluation_time_by_callback_s")
    steps = done.get("max_steps") or summary.get("global_step")
    if not by_callback or not steps or "wall_time_s" not in summary:
        return None
    schedule = _callback_schedule(directory / RESOLVED_CONFIG)
    per_round = {
        name: seconds / evaluation_rounds(steps, schedule.get(name)) for name, seconds in by_callback.items()
    }
    return MeasuredCell(
        combination=cell.combination,
        steps=int(steps),
        startup_s=max(0.0, done["wall_time_s"] - summary["wall_time_s"]),
        train_s_per_step=(summary["wall_time_s"] - summary["evaluation_time_s"]) / steps,
        per_round_s=per_round,
        every_n_steps={name: schedule.get(name) for name in by_callback},
    )


@dataclass(frozen=True)
class CostModel:
    """One combination's quiet-machine cost: the least of each part over its measured cells."""

    combination: str
    cells: int
    startup_s: float
    train_s_per_step: float
    per_round_s: dict[str, float] = field(default_factory=dict)
    every_n_steps: dict[str, int | None] = field(default_factory=dict)

    @classmethod
    def from_cells(cls, combination: str, measured: Iterable[MeasuredCell]) -> CostModel:
        cells = [m for m in measured if m.combination == combination]
        if not cells:
            raise DataError(
                f"no finished {combination} cell with DONE and summary.json records to measure its cost; "
                f"train one first (make grid GRID_COMBINATIONS={combination} BUDGETS=1 SEEDS=0) or restore "
                "an archived grid (python scripts/grid_results.py restore paper)"
            )
        names = sorted({name for m in cells for name in m.per_round_s})
        return cls(
            combination=combination,
            cells=len(cells),
            startup_s=min(m.startup_s for m in cells),
            train_s_per_step=min(m.train_s_per_step for m in cells),
            per_round_s={n: min(m.per_round_s[n] for m in cells if n in m.per_round_s) for n in names},
            every_n_steps={n: next(m.every_n_steps[n] for m in cells if n in m.every_n_steps) for n in names},
        )

    def cell_seconds(self, steps: int) -> float:
        """Training a ``steps``-step cell with its evaluation callbacks."""
        evaluations = sum(
            seconds * evaluation_rounds(steps, self.every_n_steps.get(name))
            for name, seconds in self.per_round_s.items()
        )
        return self.startup_s + steps * self.train_s_per_step + evaluations

    def protocol_draw_seconds(self) -> float:
        """One more gFD protocol draw on a saved tokenizer: a start-up and one generation round."""
        return self.startup_s + self.per_round_s.get(GENERATION_CALLBACK, 0.0)

    def describe(self) -> str:
        rounds = ", ".join(
            f"{name} {seconds:.0f} s/round"
            + (f" every {every} steps" if (every := self.every_n_steps.get(name)) else " at the end")
            for name, seconds in self.per_round_s.items()
            if seconds >= 0.5
        )
        return (
            f"{self.combination}: start-up {self.startup_s:.0f} s + {self.train_s_per_step:.2f} s/step + "
            f"{rounds} (least of {self.cells} finished cells)"
        )


def measure_grid(cell_directories: Iterable[Path]) -> list[MeasuredCell]:
    return [m for m in (measure_cell(d) for d in cell_directories) if m is not None]
