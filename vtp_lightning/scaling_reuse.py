"""May archived cells join new ones? Only if today's code trains them the same way.

An archived cell has no checkpoint, only its ``metrics.csv``. Training the same cell again (same
config, seed and steps) with today's code and comparing every logged ``train/`` value step by step
tells whether the model's maths changed since: a changed loss, schedule or data order shows at the
first logged step. The check cell is a real cell, so its records also measure today's cost.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from vtp_lightning.grid_layout import METRICS, cell_at

TRAIN_PREFIX = "train/"
DEFAULT_TOLERANCE = 1e-4


def train_values(metrics: Path) -> dict[tuple[int, str], float]:
    """``(step, name) -> value`` of every non-empty ``train/`` column of a CSVLogger file."""
    values: dict[tuple[int, str], float] = {}
    with Path(metrics).open(newline="") as file:
        for row in csv.DictReader(file):
            step = row.get("step")
            if not step:
                continue
            for name, text in row.items():
                if name and name.startswith(TRAIN_PREFIX) and text not in ("", None):
                    values[(int(float(step)), name)] = float(text)
    return values


@dataclass(frozen=True)
class Match:
    """How far a fresh cell's training values are from the archived cell's."""

    archived: Path
    fresh: Path
    compared: int
    worst: float  # largest relative difference (inf when a value is only on one side)
    where: str

    def within(self, tolerance: float) -> bool:
        return self.compared > 0 and self.worst <= tolerance

    def describe(self, tolerance: float) -> str:
        verdict = "matches" if self.within(tolerance) else "DIFFERS from"
        cell = cell_at(self.fresh)
        return (
            f"{cell.name if cell else self.fresh} trained today {verdict} the archived cell: "
            f"{self.compared} logged train/ values, largest relative difference {self.worst:.2g} "
            f"({self.where}; tolerance {tolerance:g})"
        )


def compare_cells(archived: Path, fresh: Path) -> Match:
    before, after = train_values(Path(archived) / METRICS), train_values(Path(fresh) / METRICS)
    worst, where = 0.0, "no difference"
    for key in sorted(set(before) | set(after)):
        if key not in before or key not in after:
            difference = math.inf
        else:
            a, b = before[key], after[key]
            difference = abs(a - b) / max(abs(a), abs(b), 1e-12) if a != b else 0.0
        if difference > worst:
            side = "" if key in before and key in after else (", logged on one side only")
            worst, where = difference, f"{key[1]} at step {key[0]}{side}"
    return Match(Path(archived), Path(fresh), len(set(before) & set(after)), worst, where)
